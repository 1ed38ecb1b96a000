"""Chunked simulation: the same draws locally and on a Dask cluster, whatever the workers."""

import importlib.util
import os
import signal

import numpy as np
import pytest

import amortized as bf


def _simulator():
    def prior():
        return {"theta": np.random.normal(size=2)}

    def likelihood(theta, rng):
        return {"x": theta + rng.normal(size=(5, 2))}

    return bf.make_simulator([prior, likelihood])


def test_chunks_have_independent_seeds_and_fixed_rows_follow_them():
    sim = _simulator()
    a = sim.sample(2500, seed=4, chunk_size=1000)
    assert a["theta"].shape == (2500, 2) and a["x"].shape == (2500, 5, 2)
    # chunk 2 is the third child seed's simulation of 500 draws
    from amortized._random import child_seeds

    third = sim.sample(500, seed=child_seeds(4, 3)[2])
    np.testing.assert_array_equal(a["x"][2000:], third["x"])
    # no two chunks repeat each other's draws
    assert not np.allclose(a["theta"][:500], a["theta"][1000:1500])
    np.testing.assert_array_equal(sim.sample(2500, seed=4, chunk_size=1000)["x"], a["x"])
    # a per-draw fixed value is split with the chunks; a shared one is passed whole
    theta = np.arange(2500 * 2, dtype=float).reshape(2500, 2)
    fixed = sim.sample(2500, seed=1, chunk_size=700, theta=theta)
    np.testing.assert_array_equal(fixed["theta"], theta)
    with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
        sim.sample(10, seed=0, chunk_size=0)
    with pytest.raises(ValueError, match="takes a number of draws"):
        sim.sample((2, 3), seed=0, chunk_size=2)


def test_dask_gives_the_local_draws_even_when_a_worker_dies(tmp_path):
    distributed = pytest.importorskip("distributed")
    sim = _simulator()
    local = sim.sample(10_000, seed=7, chunk_size=500, progress=False)
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster, distributed.Client(cluster) as client:  # fmt: skip
        remote = sim.sample(10_000, seed=7, chunk_size=500, client=client, progress=False)
        for k in local:
            np.testing.assert_array_equal(remote[k], local[k])
        # a bank written from Dask's chunks holds the same draws
        if importlib.util.find_spec("zarr") is not None:
            import zarr

            path = sim.sample_to_disk(tmp_path / "b.zarr", 10_000, seed=7, chunk_size=500,
                                      client=client)  # fmt: skip
            np.testing.assert_array_equal(zarr.open_group(str(path))["x"][:], local["x"])
        # one worker killed while the chunks run: Dask reruns its tasks elsewhere
        slow = bf.make_simulator([_slow_prior, _slow_likelihood])
        expected = slow.sample(40, seed=3, chunk_size=4, progress=False)
        futures_done = []

        def kill_one_worker():  # SIGKILL of a worker process, as a lost machine would be
            nanny = next(iter(cluster.workers.values()))
            os.kill(nanny.process.process.pid, signal.SIGKILL)
            futures_done.append(True)

        import threading

        before = set(client.scheduler_info()["workers"])
        timer = threading.Timer(1.0, kill_one_worker)
        timer.start()
        got = slow.sample(40, seed=3, chunk_size=4, client=client, progress=False)
        timer.join()
        assert futures_done  # the kill happened during the run (about 4 s of chunks)
        # the killed worker is gone (its nanny started a new one at another address)
        assert before - set(client.scheduler_info()["workers"])
        for k in expected:
            np.testing.assert_array_equal(got[k], expected[k])
    # the context manager closed the client; a closed client is refused
    with pytest.raises(ValueError, match="Dask client is not running"):
        sim.sample(10, seed=0, client=client)


def _slow_prior():
    import time

    time.sleep(0.2)
    return {"theta": np.random.normal(size=1)}


def _slow_likelihood(theta):
    return {"x": theta + np.random.normal(size=3)}
