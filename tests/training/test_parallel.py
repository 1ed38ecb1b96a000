"""Data-parallel training and sampling over several (CPU) devices.

The multi-device checks run in a child process, because the number of CPU devices is fixed
when JAX starts and this test process has one.
"""

import json
import os
import subprocess
import sys
import textwrap

import jax
import pytest

import amortized as bf
from amortized.training import parallel

CHILD = textwrap.dedent(
    """
    import json, sys
    import amortized as bf
    assert bf.set_cpu_devices(2) == 2
    import jax, jax.numpy as jnp, numpy as np
    jax.config.update("jax_numpy_rank_promotion", "raise")
    from amortized.training import parallel

    out = {"devices": jax.device_count()}
    devices = tuple(jax.local_devices())

    # 1. the split gradient is the whole batch's gradient (a mean loss, 64 rows, 2 devices)
    rng = np.random.default_rng(0)
    batch = {"x": jnp.asarray(rng.normal(size=(64, 3)), jnp.float32)}
    params = {"w": jnp.asarray(rng.normal(size=(3,)), jnp.float32), "b": jnp.ones(())}

    def objective(p, b, k):
        r = b["x"] @ p["w"] + p["b"] - 1.0
        return jnp.mean(jnp.tanh(r) ** 2)

    key = jax.random.key(0)
    v1, g1 = jax.jit(lambda p, b, k: parallel.value_and_grad(objective, p, b, k, None))(
        params, batch, key)
    v2, g2 = jax.jit(lambda p, b, k: parallel.value_and_grad(objective, p, b, k, devices))(
        params, batch, key)
    out["value_err"] = float(abs(v1 - v2))
    out["grad_err"] = max(float(jnp.max(jnp.abs(g1[n] - g2[n]))) for n in g1)
    out["grad_scale"] = max(float(jnp.max(jnp.abs(g1[n]))) for n in g1)

    # odd batches use as many devices as divide them (here one), and say so
    import warnings
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out["odd_devices"] = parallel.training_devices(127)
    out["odd_warned"] = any("not divisible" in str(w.message) for w in caught)
    out["even_devices"] = len(parallel.training_devices(128))

    # 2. a workflow trained and sampled on both devices: conjugate normal model,
    # theta ~ N(0, 1), x | theta ~ N(theta, 0.5^2): posterior N(0.8 x, 0.2)
    def prior():
        return {"theta": np.random.normal(size=1)}

    def likelihood(theta):
        return {"x": theta + 0.5 * np.random.normal(size=1)}

    sim = bf.make_simulator([prior, likelihood])
    wf = bf.BasicWorkflow(simulator=sim, inference_variables="theta",
                          inference_conditions="x",
                          inference_network=bf.networks.CouplingFlow(depth=2))
    data = wf.simulate(4000, seed=1)
    # backend compilations per epoch: the epoch function compiles once, on epoch 1
    compiles, epoch_of = [0] * 25, [0]
    from jax import monitoring
    monitoring.register_event_duration_secs_listener(
        lambda ev, d, **kw: compiles.__setitem__(epoch_of[0], compiles[epoch_of[0]] + 1)
        if ev == "/jax/core/compile/backend_compile_duration" else None)

    def counting(fit_fn):  # fit's 8th argument, epoch_data(epoch), marks each epoch's start
        def wrapped(*a, **kw):
            inner = a[7]
            def epoch_data(e):
                epoch_of[0] = e
                return inner(e)
            return fit_fn(*a[:7], epoch_data, *a[8:], **kw)
        return wrapped

    import amortized.approximators.fitting as cont
    cont.fit = counting(cont.fit)
    hist = wf.fit_offline(data, epochs=25, batch_size=128, seed=2, progress=False)
    out["history_devices"] = hist["devices"]
    out["compiles_first_epoch"] = compiles[0]
    out["compiles_later_epochs"] = sum(compiles[1:])
    out["loss_first"], out["loss_last"] = hist["loss"][0], hist["loss"][-1]
    obs = {"x": np.array([[1.0]], np.float32)}
    d1 = wf.sample(conditions=obs, num_samples=4001, seed=3)["theta"]
    d2 = wf.sample(conditions=obs, num_samples=4001, seed=3)["theta"]
    out["shape"] = list(d1.shape)
    out["same_seed_equal"] = bool(np.array_equal(d1, d2))
    out["halves_differ"] = bool(not np.allclose(d1[0, :2000, 0], d1[0, 2001:4001, 0]))
    out["mean"], out["sd"] = float(d1.mean()), float(d1.std())
    lp = wf.approximator.sample_and_log_prob(conditions=obs, num_samples=11, seed=3)
    out["lp_shape"] = list(lp[1].shape) if isinstance(lp, tuple) else None

    # 3. a summary network with dropout (a Python flag among its leaves) samples on both
    # devices (the flag was traced by shard_map and failed)
    def set_likelihood(theta):
        return {"xs": theta + np.random.normal(size=(5, 1))}

    sw = bf.BasicWorkflow(
        simulator=bf.make_simulator([prior, set_likelihood]), inference_variables="theta",
        summary_variables="xs", inference_network=bf.networks.CouplingFlow(depth=1),
        summary_network=bf.networks.SetTransformer(
            embed_dims=(8,), num_heads=(1,), mlp_widths=(8,)))
    sw.fit_offline(
        sw.simulate(64, seed=0), epochs=1, batch_size=32, seed=0, progress=False,
        early_stopping=False)
    out["set_draws_shape"] = list(
        sw.sample(conditions={"xs": np.zeros((2, 5, 1))}, num_samples=10, seed=0)["theta"].shape)
    print("RESULT" + json.dumps(out))
    """
)


@pytest.fixture(scope="module")
def child():
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    res = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=env, timeout=900
    )
    line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT")]
    assert res.returncode == 0 and line, res.stderr[-3000:]
    return json.loads(line[0][len("RESULT") :])


def test_two_cpu_devices_are_made(child):
    assert child["devices"] == 2


def test_a_summary_network_with_dropout_samples_on_several_devices(child):
    assert child["set_draws_shape"] == [2, 10, 1]


def test_batches_are_split_over_the_devices_that_divide_them(child):
    assert child["even_devices"] == 2
    assert child["odd_devices"] is None and child["odd_warned"]


def test_split_gradient_equals_whole_batch_gradient(child):
    # float32 sums of 32 and 64 terms in different orders: a few ulps of values O(1)
    assert child["value_err"] < 1e-6
    assert child["grad_err"] < 1e-5 * max(1.0, child["grad_scale"])


def test_later_epochs_do_not_compile_again(child):
    # networks and optimizer state come back from a data-parallel epoch replicated over the
    # devices; they must start there too, or epoch 2 compiles the whole step again
    assert child["compiles_first_epoch"] > 0  # the counter sees compilations at all
    assert child["compiles_later_epochs"] == 0


def test_data_parallel_training_and_sampling_recover_the_posterior(child):
    # recorded per epoch (early stopping may end the 25 epochs sooner)
    assert set(child["history_devices"]) == {2} and len(child["history_devices"]) > 5
    assert child["loss_last"] < child["loss_first"]
    assert child["shape"] == [1, 4001, 1]  # 4001 draws: 2001 per device, cut to 4001
    assert child["same_seed_equal"]
    assert child["halves_differ"]  # each device draws with its own key
    # exact posterior at x = 1: N(0.8, sd sqrt(0.2) = 0.447); the standard error of the mean
    # of 4001 draws is 0.007, the flow's error after 25 short epochs dominates: 0.05 / 0.04
    assert abs(child["mean"] - 0.8) < 0.05
    assert abs(child["sd"] - 0.2**0.5) < 0.04


def test_set_cpu_devices_checks_its_argument():
    with pytest.raises(TypeError, match="num_devices"):
        bf.training.set_cpu_devices(2.0)
    with pytest.raises(TypeError, match="num_devices"):
        bf.training.set_cpu_devices(True)
    with pytest.raises(ValueError, match=">= 1"):
        bf.training.set_cpu_devices(0)


def test_set_cpu_devices_after_jax_started():
    jax.numpy.zeros(1).block_until_ready()  # JAX has started in this process
    have = jax.device_count()
    assert bf.training.set_cpu_devices(have) == have  # nothing to change
    with pytest.raises(RuntimeError, match="top of the script"):
        bf.training.set_cpu_devices(have + 1)


def test_one_device_means_no_split():
    if jax.device_count() > 1:
        pytest.skip("this process has several devices")
    assert parallel.training_devices(256) is None
    assert parallel.jax_started()
    assert parallel.sampling_devices() is None


def test_import_splits_the_cpu_by_default():
    # a script that never calls set_cpu_devices: importing amortized before JAX starts
    # splits the CPU (here into the 3 devices AMORTIZED_CPU_DEVICES asks for, whatever the
    # machine's cores)
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env[parallel.CPU_DEVICES_ENV] = "3"
    code = "import amortized, jax; print('DEVICES', jax.device_count())"
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert "DEVICES 3" in res.stdout, res.stderr[-2000:]


def test_split_by_default_notes_a_started_jax_and_honours_the_opt_out(monkeypatch):
    jax.numpy.zeros(1).block_until_ready()
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(4)))
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.setenv(parallel.CPU_DEVICES_ENV, "1")
    assert parallel.split_cpu_by_default() is None  # opted out: nothing to say
    monkeypatch.delenv(parallel.CPU_DEVICES_ENV)
    if jax.device_count() == 1:
        with pytest.warns(parallel.CpuSplitNote, match="already started"):
            assert parallel.split_cpu_by_default() is None
    monkeypatch.setenv(parallel.CPU_DEVICES_ENV, "two")
    with pytest.raises(ValueError, match="AMORTIZED_CPU_DEVICES must be a positive integer"):
        parallel.split_cpu_by_default()


def test_default_device_count_is_capped(monkeypatch):
    # a 64-core machine gets DEFAULT_MAX_DEVICES devices by default (the request is named in
    # the error, since JAX already started in this process)
    jax.numpy.zeros(1).block_until_ready()
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: set(range(64)))
    want = parallel.DEFAULT_MAX_DEVICES
    assert want == 8
    with pytest.raises(RuntimeError, match=f"device_count={want}'"):
        bf.set_cpu_devices()
