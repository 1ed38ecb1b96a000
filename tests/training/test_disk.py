"""Training from a bank of simulation files on disk against training on the same data in
memory; bad banks are named."""

import pickle

import numpy as np
import pytest

import amortized as bf


def _workflow():
    def prior():
        return {"theta": np.random.normal(size=2)}

    def likelihood(theta):
        return {"x": theta + 0.5 * np.random.normal(size=2)}

    return bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, likelihood]),
        adapter=bf.Adapter.create_default("theta", "x"),
        # affine couplings: with depth 2 the default's final spline is half the flow, and on
        # this normal posterior it left the draws 7% too wide after 20 epochs (the affine
        # flow: 2.6%); the checks here are of the bank, against memory and the exact answer
        inference_network=bf.networks.CouplingFlow(
            depth=2, transform="affine", subnet_kwargs={"widths": [32]}
        ),
    )


def _write_bank(root, data):
    root.mkdir()
    for i in range(len(data["theta"])):
        with open(root / f"sim_{i:05d}.pkl", "wb") as fh:
            pickle.dump({k: v[i] for k, v in data.items()}, fh)


def test_fit_disk_matches_fit_offline_on_the_same_simulations(tmp_path):
    wf = _workflow()
    data = wf.simulate(3000, seed=0)
    _write_bank(tmp_path / "bank", data)
    disk = _trains_like_memory(tmp_path / "bank", data)
    # 46 batches of 64 in chunks of at most 1,000 rows: 4 equal chunks of 12 batches, the
    # last filled with 2 batches from the start of the epoch's order
    assert len(disk["loss"]) == 20 and disk["steps"][-1] == 20 * 48


def _trains_like_memory(bank, data):
    """fit_disk on ``bank`` against fit_offline on the same simulations ``data`` and
    against the exact posterior; returns the disk run's history."""
    val = _workflow().simulate(1000, seed=1)
    memory = _workflow().fit_offline(
        data, epochs=20, batch_size=64, validation_data=val, seed=2, progress=False,
        early_stopping=False,
    )  # fmt: skip
    disk_wf = _workflow()
    disk = disk_wf.fit_disk(
        bank, epochs=20, batch_size=64, validation_data=val, seed=2,
        progress=False, early_stopping=False, chunk_rows=1000,
    )  # fmt: skip
    # the same model, data and settings, another order of batches: the held-out loss of
    # the last epoch agrees to within its noise (1,000 held-out examples, per-example sd of
    # the loss about 1: SE 0.03) plus the offset of the standardization, which the bank
    # learns from its first chunk (1,000 rows here) and memory from all 3,000 (measured
    # 0.055); 0.15 allows both
    assert abs(disk["val_loss"][-1] - memory["val_loss"][-1]) < 0.15, (disk, memory)
    # and the exact posterior of this normal model (prior N(0, 1), noise 0.5): mean
    # x / 1.25, sd sqrt(0.2) = 0.447 per coordinate
    x = np.array([[0.5, -1.0]])
    draws = disk_wf.sample(num_samples=4000, conditions={"x": x}, seed=3)["theta"][0]
    # 20 epochs on 3,000 simulations (measured: means within 0.015 and sds within 2% of
    # the exact, on disk as in memory): within 0.15 posterior sd (0.07) of the exact mean
    # and 10% of its sd; a bank whose parameters and data were paired wrongly gives mean 0
    np.testing.assert_allclose(draws.mean(0), x[0] / 1.25, atol=0.07)
    np.testing.assert_allclose(draws.std(0), np.sqrt(0.2), rtol=0.1)
    return disk


def test_fit_disk_with_early_stopping_holds_out_files(tmp_path):
    wf = _workflow()
    _write_bank(tmp_path / "bank", wf.simulate(600, seed=0))
    hist = wf.fit_disk(tmp_path / "bank", epochs=3, batch_size=32, seed=1, progress=False)
    assert hist["held_out"] == 100  # holdout_size(600): at least min(100, 600 / 5)


def test_bad_banks_are_named(tmp_path):
    wf = _workflow()
    with pytest.raises(FileNotFoundError, match="no folder"):
        wf.fit_disk(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"no files match '\*.pkl'"):
        wf.fit_disk(tmp_path / "empty")
    data = wf.simulate(100, seed=0)
    _write_bank(tmp_path / "bank", data)
    with open(tmp_path / "bank" / "sim_00050.pkl", "wb") as fh:
        pickle.dump({"theta": np.zeros(3), "x": np.zeros(2)}, fh)
    with pytest.raises(ValueError, match=r"sim_00050.pkl.*'theta' has shape \(3,\)"):
        wf.fit_disk(tmp_path / "bank", epochs=1, batch_size=10, progress=False)
    with open(tmp_path / "bank" / "sim_00050.pkl", "wb") as fh:
        pickle.dump({"theta": np.zeros(2)}, fh)
    with pytest.raises(ValueError, match=r"sim_00050.pkl.*has keys \['theta'\]"):
        wf.fit_disk(tmp_path / "bank", epochs=1, batch_size=10, progress=False)


def test_a_zarr_bank_holds_the_chunked_draws_and_trains_like_memory(tmp_path):
    pytest.importorskip("zarr")
    wf = _workflow()
    path = wf.simulator.sample_to_disk(tmp_path / "bank.zarr", 3000, seed=5, chunk_size=500)
    import zarr

    store = zarr.open_group(str(path), mode="r")
    meta = dict(store.attrs)["amortized"]
    assert meta["num"] == 3000 and meta["chunk_size"] == 500 and meta["seed"] == 5
    assert meta["outputs"]["theta"] == {"shape": [2], "dtype": "float64"}
    # exactly the draws of the chunked sample with the same seed
    same = wf.simulator.sample(3000, seed=5, chunk_size=500, progress=False)
    np.testing.assert_array_equal(store["x"][:], same["x"])
    with pytest.raises(FileExistsError, match="exists"):
        wf.simulator.sample_to_disk(path, 10, seed=0)

    _trains_like_memory(path, same)
    (tmp_path / "other.zarr").mkdir()
    zarr.open_group(str(tmp_path / "other.zarr"), mode="w")
    with pytest.raises(ValueError, match="not a simulation bank written by sample_to_disk"):
        _workflow().fit_disk(tmp_path / "other.zarr")


def test_the_cache_reads_each_file_once_and_trains_the_same(tmp_path):
    wf = _workflow()
    data = wf.simulate(400, seed=0)
    _write_bank(tmp_path / "bank", data)
    val = wf.simulate(200, seed=1)
    reads = []

    def counting_load(path):
        reads.append(path)
        with open(path, "rb") as fh:
            return pickle.load(fh)

    hists = {}
    for cache in (True, False):
        reads.clear()
        hists[cache] = _workflow().fit_disk(
            tmp_path / "bank", epochs=3, batch_size=32, validation_data=val, seed=2,
            load_fn=counting_load, cache=cache, progress=False, early_stopping=False,
            chunk_rows=128,
        )  # fmt: skip
        n_reads = len(reads)
        if cache:
            # the first file (to learn the keys and shapes), then each file once
            assert n_reads == 1 + 400
        else:
            # the first file, the first chunk (standardization), then 3 epochs of the
            # 384 rows that fill batches of 32
            assert n_reads == 1 + 128 + 3 * 384
    # the same values in the same order: the same training, to the last bit
    assert hists[True]["loss"] == hists[False]["loss"]
    assert hists[True]["val_loss"] == hists[False]["val_loss"]


def test_cache_settings_are_checked(tmp_path):
    wf = _workflow()
    root = tmp_path / "bank"
    root.mkdir()
    for i in range(40):
        with open(root / f"sim_{i:03d}.pkl", "wb") as fh:
            pickle.dump({"theta": np.zeros(2), "x": np.zeros(2), "tag": "a"}, fh)
    with pytest.raises(ValueError, match=r"cache=True.*not fixed-size arrays.*'tag': '<U1'"):
        wf.fit_disk(root, cache=True, epochs=1, batch_size=8, progress=False)
    with pytest.raises(TypeError, match="cache must be None, True, False or a folder, got 3"):
        wf.fit_disk(root, cache=3, epochs=1, batch_size=8, progress=False)
