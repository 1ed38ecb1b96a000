"""The training loop's two execution paths: one compiled call per epoch, or per step."""

from __future__ import annotations

import importlib

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import amortized as bf
from amortized.approximators import core
from amortized.training.optimizer import default_optimizer
from amortized.training.stopping import selection_z

fit_module = importlib.import_module("amortized.training.fit")


def test_has_loop_finds_scans_nested_in_vmap_and_jit():
    def recurrent(x):
        return jax.lax.scan(lambda c, xi: (c + xi, None), 0.0, x)[0]

    nested = jax.make_jaxpr(jax.jit(jax.vmap(recurrent)))(jnp.ones((3, 4)))
    plain = jax.make_jaxpr(jax.jit(lambda x: jnp.sum(x**2)))(jnp.ones((3, 4)))
    assert fit_module._has_loop(nested.jaxpr)
    assert not fit_module._has_loop(plain.jaxpr)


def _trained_workflow(summary_network):
    rng = np.random.default_rng(0)
    data = {
        "theta": rng.normal(size=(64, 2)).astype(np.float32),
        "x": rng.normal(size=(64, 12, 1)).astype(np.float32),
    }
    wf = bf.BasicWorkflow(
        inference_network=bf.networks.CouplingFlow(depth=2),
        summary_network=summary_network,
        inference_variables=["theta"],
        summary_variables=["x"],
    )
    wf.fit_offline(data, epochs=1, batch_size=16, seed=0, progress=False, early_stopping=False)
    return wf.approximator, wf.approximator.to_network_arrays(data, where="test")


def test_per_step_epoch_matches_the_compiled_epoch():
    # the per-step path exists for speed only: same permutation, keys and updates as the
    # epoch-level scan (the reference); tolerance: float32 rounding of differently fused
    # kernels over 4 Adam steps
    ap, arrays = _trained_workflow(
        bf.networks.TimeSeriesNetwork(summary_dim=4, filters=(8,), recurrent_dim=8)
    )
    opt = default_optimizer(1e-3, 10)
    params = ravel_pytree(eqx.filter(ap.nets, eqx.is_inexact_array))[0]
    key, first_step = jax.random.key(3), jnp.int32(5)
    args = (ap.nets, opt.init(params), ap.stats, arrays, key, first_step, core.loss, opt, 4, 16)
    assert fit_module.step_has_loop(ap.nets, args[1], ap.stats, arrays, core.loss, opt, 16, True)
    nets_a, _, loss_a = fit_module._train_epoch(*args, True, None)
    nets_b, _, loss_b = fit_module._train_epoch_by_step(*args, True, None)
    np.testing.assert_allclose(np.asarray(loss_a), np.asarray(loss_b), rtol=1e-5, atol=1e-5)
    for a, b in zip(jax.tree.leaves(nets_a), jax.tree.leaves(nets_b), strict=True):
        if hasattr(a, "dtype") and jnp.issubdtype(a.dtype, jnp.floating):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)


def test_loop_free_losses_keep_the_compiled_epoch():
    ap, arrays = _trained_workflow(bf.networks.DeepSet(summary_dim=4))
    opt = default_optimizer(1e-3, 10)
    params = ravel_pytree(eqx.filter(ap.nets, eqx.is_inexact_array))[0]
    assert not fit_module.step_has_loop(
        ap.nets, opt.init(params), ap.stats, arrays, core.loss, opt, 16, True
    )


def test_second_fit_with_the_same_settings_compiles_nothing():
    # the compiled epoch is specialized to its optimizer: the default optimizer is the same
    # object for the same settings, so a second network of the same architecture (an
    # ensemble member) trains without compiling again. A counter of XLA compilations that
    # sees the first fit compile (the check can fail) must see none in the second.
    from jax import monitoring

    count = [0]

    def listen(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    monitoring.register_event_duration_secs_listener(listen)
    try:
        data = bf.simulators.benchmarks.two_moons().sample(606, seed=0)
        seen = []
        for seed in range(2):
            wf = bf.BasicWorkflow(
                inference_network=bf.networks.CouplingFlow(depth=1, subnet_kwargs={"widths": [7]}),
                inference_variables="theta",
                inference_conditions="x",
            )
            before = count[0]
            wf.fit_offline(data, epochs=2, batch_size=101, seed=seed, progress=False)
            seen.append(count[0] - before)
    finally:
        monitoring.unregister_event_duration_listener(listen)
    assert seen[0] > 0
    assert seen[1] == 0, seen


def test_overfitting_message_flags_a_validation_loss_that_rose_after_an_early_minimum():
    # the shape measured on gaussian_linear_uniform (best at epoch 5 of 100, then rising)
    rising = [9.85, 7.6, 7.56, 7.55, 7.55, 7.6, 7.7, 7.9, 8.2, 8.5, 8.8, 8.8]
    message = bf.training.overfitting_message(rising, restored=True)
    assert message is not None and "epoch 4 of 12" in message and "restore_best kept" in message
    assert "restore_best=True" in bf.training.overfitting_message(rising, restored=False)
    # still falling, a late minimum, a rise within 5% of the loss, or too few epochs: silent
    assert bf.training.overfitting_message(list(np.linspace(9, 7, 20)), True) is None
    late = list(np.linspace(9, 7, 15)) + [7.5] * 5
    assert bf.training.overfitting_message(late, True) is None
    flat = [9.0, 7.5] + [7.8] * 10  # rise 0.3 <= 0.05 * 7.5 = 0.375
    assert bf.training.overfitting_message(flat, True) is None
    assert bf.training.overfitting_message(rising[:9], True) is None


def _overfitting_workflow():
    """gaussian_linear and a wide coupling flow at a high learning rate: it memorizes a
    few dozen simulations within a few epochs."""
    sim = bf.simulators.benchmarks.get_task("gaussian_linear")
    wf = bf.BasicWorkflow(
        simulator=sim,
        inference_network=bf.networks.CouplingFlow(subnet_kwargs={"widths": (256, 256)}),
        inference_variables="theta",
        inference_conditions="x",
        initial_learning_rate=2e-3,
    )
    return sim, wf


def test_fit_warns_when_the_network_overfits_a_tiny_dataset():
    # 16 simulations and a wide flow trained for 60 epochs: it memorizes them, and the
    # validation loss on 64 fresh ones rises far above its early minimum
    sim, wf = _overfitting_workflow()
    with pytest.warns(bf.training.OverfittingWarning, match="overfits"):
        wf.fit_offline(
            sim.sample(16, seed=0),
            epochs=60,
            batch_size=16,
            validation_data=sim.sample(64, seed=1),
            seed=2,
            progress=False,
            early_stopping=False,
        )


class _Scalar(eqx.Module):
    w: jax.Array


def _squared_error(nets, stats, batch, key, training, step):
    return jnp.mean((nets.w - batch["y"]) ** 2)


def _fit_scalar(epochs, patience, validation_target, history=None, reduce_after=None):
    """Train w (from 0) towards training targets +1 by SGD (with the plateau scale),
    validating on ``validation_target`` (None: no validation data)."""
    import optax

    from amortized.training.optimizer import scale_by_plateau
    from amortized.training.stopping import PlateauRule

    rule = PlateauRule(patience=patience, reduce_after=reduce_after or patience)
    validation = None if validation_target is None else {"y": validation_target * jnp.ones(4)}
    return fit_module.fit(
        _Scalar(jnp.zeros(())),
        None,
        _squared_error,
        optax.chain(optax.sgd(0.1), scale_by_plateau()),
        epochs=epochs,
        batch_size=4,
        key=jax.random.key(0),
        epoch_data=lambda _: {"y": jnp.ones(8)},
        validation_data=validation,
        progress=False,
        early_stopping=rule,
        history=history,
    )


def test_early_stopping_stops_on_a_rising_validation_curve_and_restores_the_best_epoch():
    # training pulls w from 0 towards +1 while the validation targets are -1: the
    # validation loss (w + 1)^2 rises from the first epoch on, so the best epoch is 1 and
    # with patience 3 training stops after epoch 4 of the 50 allowed
    nets, history = _fit_scalar(epochs=50, patience=3, validation_target=-1.0)
    assert len(history["val_loss"]) == 4 and np.all(np.diff(history["val_loss"]) > 0)
    assert history["best_epoch"] == 1 and history["stopped_epoch"] == 4
    assert history["restored_epoch"] == 1
    # the returned networks are epoch 1's: their validation loss is the first one (float32)
    np.testing.assert_allclose((float(nets.w) + 1.0) ** 2, history["val_loss"][0], rtol=1e-6)
    # a validation curve that keeps falling never stops early
    _, falling = _fit_scalar(epochs=6, patience=2, validation_target=1.0)
    assert falling["stopped_epoch"] is None and falling["best_epoch"] == 6
    with pytest.raises(ValueError, match="needs validation_data"):
        _fit_scalar(epochs=2, patience=2, validation_target=None)
    # continued training after a fit without validation data (3 epochs, no validation
    # losses): the rule counts this fit's validation losses, numbered after those epochs
    earlier = {"loss": [1.0, 1.0, 1.0], "val_loss": []}
    _, continued = _fit_scalar(epochs=50, patience=3, validation_target=-1.0, history=earlier)
    assert len(continued["val_loss"]) == 4
    assert continued["best_epoch"] == 4 and continued["stopped_epoch"] == 7


def _fit_towards_zero(w0, rule):
    """Train w (from ``w0``) towards training targets 0 by SGD (rate 0.1 times the plateau
    scale, two steps of batch 4 per epoch), validating on 100 targets +1 and -1."""
    import optax

    from amortized.training.optimizer import scale_by_plateau

    return fit_module.fit(
        _Scalar(jnp.asarray(w0, jnp.float32)),
        None,
        _squared_error,
        optax.chain(optax.sgd(0.1), scale_by_plateau()),
        epochs=50,
        batch_size=4,
        key=jax.random.key(0),
        epoch_data=lambda _: {"y": jnp.zeros(8)},
        validation_data={"y": jnp.tile(jnp.array([1.0, -1.0]), 50)},
        progress=False,
        early_stopping=rule,
    )[1]


def test_a_plateau_that_creeps_down_within_chance_does_not_reset_patience():
    # SGD pulls w from 1 towards the training targets 0: w = 0.64^e after epoch e. The
    # held-out targets are +1 and -1, so the mean held-out loss w^2 + 1 falls every epoch,
    # forever (a rule where any decrease counts never stops). Between epochs j and k the
    # per-example differences have mean w_j^2 - w_k^2 and standard error about
    # 2 (w_j - w_k) / 10, so epoch k beats the reference j by two standard errors only
    # while w_j + w_k > 0.4: epochs 2, 3 and 4 improve (0.64 + 0.41, 0.41 + 0.26,
    # 0.26 + 0.17 = 0.43), epoch 5 does not (0.17 + 0.11), nor any later one; with
    # patience 3 training stops after epoch 7.
    from amortized.training.stopping import PlateauRule

    # min_scale 1: no rate to lower, so the stop is this test's only subject (a plateau
    # above the floor lowers the rate first; the next test)
    history = _fit_towards_zero(1.0, PlateauRule(patience=3, reduce_after=3, min_scale=1.0))
    assert np.all(np.diff(history["val_loss"]) < 0)  # a new minimum every epoch
    assert history["last_improvement"] == 4 and history["stopped_epoch"] == 7
    assert history["best_epoch"] == 7
    # the rate is lowered only when no new minimum comes (none here), not on chance alone
    assert history["lr_reductions"] == []


def test_progress_slower_than_min_gain_does_not_count():
    # the creeping plateau of the test above (held-out loss w^2 + 1, w = 0.64^e): epoch 3
    # gains 0.099 nats on epoch 2, epoch 4 only 0.041 on epoch 3 (beyond chance, see
    # above), and later epochs less than 0.05 per epoch on epoch 3 (epoch 5: 0.057 over
    # two epochs). With min_gain 0.05 the last counted improvement is epoch 3, and with
    # patience 3 training stops after epoch 6, a new minimum still coming every epoch
    from amortized.training.stopping import PlateauRule

    rule = PlateauRule(patience=3, reduce_after=3, min_scale=1.0, min_gain=0.05)
    history = _fit_towards_zero(1.0, rule)
    assert np.all(np.diff(history["val_loss"]) < 0)
    assert history["last_improvement"] == 3 and history["stopped_epoch"] == 6
    with pytest.raises(ValueError, match="min_gain must be >= 0, got -1"):
        PlateauRule(min_gain=-1.0)
    with pytest.raises(TypeError, match="min_gain must be a number >= 0.*'x'"):
        PlateauRule(min_gain="x")
    # each setting's error names the rule and the setting
    with pytest.raises(TypeError, match="PlateauRule: patience must be a positive int, got 2.5"):
        PlateauRule(patience=2.5)
    with pytest.raises(ValueError, match="PlateauRule: patience must be a positive int, got 0"):
        PlateauRule(patience=0)
    with pytest.raises(ValueError, match=r"PlateauRule: factor must lie in \(0, 1\), got 1.5"):
        PlateauRule(factor=1.5)


def test_a_flat_plateau_lowers_the_rate_to_its_floor_before_it_stops():
    # w starts at the training targets 0: the gradient is 0, w never moves, and the
    # held-out loss is the same every epoch (no improvement, and not rising: the best
    # epoch does not beat the last). Patience 3 runs out after epoch 4; above the floor the
    # rule lowers the rate instead (0.2 after epoch 4, 0.04 after 7, the floor 0.008 after
    # 10, each reduce_after = 3 epochs apart) and stops 3 epochs after reaching the floor
    from amortized.training.stopping import PlateauRule

    history = _fit_towards_zero(0.0, PlateauRule(patience=3, reduce_after=3))
    assert np.ptp(history["val_loss"]) == 0.0
    assert history["lr_reductions"] == [4, 7, 10] and history["stopped_epoch"] == 13
    np.testing.assert_allclose(history["lr_scale"][-1], 0.2**3, rtol=1e-6)


def test_plateau_rule_lowers_the_learning_rate_before_it_stops():
    # validation targets -1 while training pulls w towards +1: the loss rises every epoch,
    # so with reduce_after 2 the rate is lowered after epochs 3 and 5 (0.2, then 0.04) and
    # training stops after epoch 7 (patience 6). Reference: SGD on (w - 1)^2 with rate
    # 0.1 * scale, two steps of batch 4 per epoch: w <- w + 0.2 scale (1 - w), exactly.
    _, history = _fit_scalar(epochs=50, patience=6, validation_target=-1.0, reduce_after=2)
    assert history["lr_reductions"] == [3, 5] and history["stopped_epoch"] == 7
    np.testing.assert_allclose(history["lr_scale"], [1, 1, 1, 0.2, 0.2, 0.04, 0.04], rtol=1e-6)
    w, expected = 0.0, []
    for scale in history["lr_scale"]:
        for _ in range(2):
            w += 0.2 * scale * (1.0 - w)
        expected.append((w + 1.0) ** 2)
    # float32 arithmetic over 14 steps
    np.testing.assert_allclose(history["val_loss"], expected, rtol=1e-5)


def test_fit_offline_stops_early_on_a_held_out_share():
    # the overfitting setting above with early stopping (the default): 5% (at least
    # min(100, n / 5)) of the 40 simulations held out, training stops once that loss stopped
    # improving for 10 epochs, and the networks kept are the best epoch's when it beats the
    # last one beyond chance on the held-out rows (else the last epoch's): their loss on
    # those rows equals the history's value for that epoch (float32 sums of the same rows)
    sim, wf = _overfitting_workflow()
    data = sim.sample(40, seed=0)
    history = wf.fit_offline(data, epochs=100, batch_size=16, seed=2, progress=False)
    assert history["held_out"] == 8 and history["stopped_epoch"] is not None
    # a rising loss stops as soon as patience runs out; a plateau first lowers the rate
    assert history["last_improvement"] + 10 <= history["stopped_epoch"] < 100
    assert history["last_improvement"] <= history["best_epoch"]
    check = history["best_vs_last"]
    # the rule of fit: beyond selection_z standard errors, corrected for having picked the
    # lowest of the epochs' held-out losses
    z = selection_z(len(history["val_loss"]))
    restore = check["loss_difference"] > z * check["standard_error"]
    assert history["restored_epoch"] == (history["best_epoch"] if restore else None)
    kept = min(history["val_loss"]) if restore else history["val_loss"][-1]
    ap = wf.approximator
    arrays = ap.to_network_arrays(data, where="test")
    key = jax.random.split(jax.random.key(2), 3)[0]  # the approximator's hold-out key
    from amortized.training.holdout import split_rows

    _, held = split_rows(arrays, 8, key)
    # a coupling flow's loss without dropout does not use its key
    val = fit_module._eval_losses(ap.nets, ap.stats, held, jax.random.key(0), core.loss, 8)
    np.testing.assert_allclose(float(val.mean()), kept, rtol=1e-5)
    with pytest.raises(TypeError, match="early_stopping must be True, False or None"):
        wf.fit_offline(data, epochs=1, early_stopping="yes")


def test_held_out_rows_split_nested_sources():
    from amortized.training.holdout import split_rows

    arrays = {"a": np.arange(10), "summary_variables": {"s1": np.arange(20).reshape(10, 2)}}
    train, held = split_rows(arrays, 3, jax.random.key(0))
    assert held["summary_variables"]["s1"].shape == (3, 2) and train["a"].shape == (7,)
    # rows stay together across the sources
    np.testing.assert_array_equal(held["summary_variables"]["s1"][:, 0], 2 * held["a"])


def _the_step(nets, stats, batch, key, training, step):
    # the loss's value is the optimizer step it was given (plus a zero that depends on w)
    return step.astype(jnp.float32) + 0.0 * jnp.mean(nets.w * batch["y"])


def test_the_loss_sees_the_optimizer_step_counted_across_fits():
    # 8 rows in batches of 4: 2 steps per epoch. Steps 0, 1 | 2, 3 | 4, 5 in a first fit of
    # three epochs (epoch means 0.5, 2.5, 4.5), then 6, 7 in a second fit on its history;
    # validation is evaluated at the steps taken by the end of the epoch
    import optax

    def run(epochs, history):
        return fit_module.fit(
            _Scalar(jnp.zeros(())),
            None,
            _the_step,
            optax.sgd(0.1),
            epochs=epochs,
            batch_size=4,
            key=jax.random.key(0),
            epoch_data=lambda _: {"y": jnp.ones(8)},
            validation_data={"y": jnp.ones(2)},
            progress=False,
            history=history,
        )[1]

    history = run(3, None)
    np.testing.assert_array_equal(history["loss"], [0.5, 2.5, 4.5])
    np.testing.assert_array_equal(history["val_loss"], [2.0, 4.0, 6.0])
    assert history["steps"] == [2, 4, 6]
    history = run(1, history)
    np.testing.assert_array_equal(history["loss"], [0.5, 2.5, 4.5, 6.5])
    assert history["steps"] == [2, 4, 6, 8] and fit_module.steps_done(history) == 8


def test_fit_validates_and_returns_the_parameter_average():
    # SGD at rate 0.1 on (w - 1)^2 from w = 0: w_k = 1 - 0.8^k after step k. The average
    # of track_average(0.9) follows a_k = d_k a_{k-1} + (1 - d_k) w_k with
    # d_k = min(0.9, k / (9 + k)) (k counted from 1), a_0 = 0; computed here in float64
    import optax

    from amortized.training.optimizer import track_average

    steps_per_epoch, epochs = 2, 3
    w, a, averages = 0.0, 0.0, []
    for k in range(1, steps_per_epoch * epochs + 1):
        w = w - 0.2 * (w - 1.0)
        d = min(0.9, k / (9.0 + k))
        a = d * a + (1.0 - d) * w
        if k % steps_per_epoch == 0:
            averages.append(a)

    def run(**validation):
        return fit_module.fit(
            _Scalar(jnp.zeros(())),
            None,
            _squared_error,
            optax.chain(optax.sgd(0.1), track_average(0.9)),
            epochs=epochs,
            batch_size=4,
            key=jax.random.key(0),
            epoch_data=lambda _: {"y": jnp.ones(8)},
            progress=False,
            **validation,
        )

    nets, history = run(validation_data={"y": -jnp.ones(4)})
    # float32 arithmetic against float64: a few ulps
    np.testing.assert_allclose(float(nets.w), averages[-1], rtol=1e-5)
    np.testing.assert_allclose(history["val_loss"], (np.array(averages) + 1.0) ** 2, rtol=1e-5)
    # the last step's unaveraged weight is elsewhere: the test tells the two apart
    assert abs(float(nets.w) - w) > 0.04
    # without validation data the average is returned too
    plain, _ = run()
    np.testing.assert_allclose(float(plain.w), averages[-1], rtol=1e-5)


def test_a_negative_or_doubled_parameter_average_is_refused():
    import optax

    from amortized.training.optimizer import averaged_params, default_optimizer, track_average

    with pytest.raises(ValueError, match=r"decay must lie in \[0, 1\), got -0.5"):
        default_optimizer(1e-3, 100, average_decay=-0.5)
    twice = optax.chain(track_average(0.9), track_average(0.5))
    with pytest.raises(ValueError, match="keeps 2 parameter averages"):
        averaged_params(twice.init(jnp.zeros(2)))


def _flow_matching_workflow():
    sim = bf.simulators.benchmarks.get_task("gaussian_linear")
    net = bf.networks.FlowMatching(subnet_kwargs={"widths": (32, 32)})
    wf = bf.BasicWorkflow(
        simulator=sim, inference_network=net, inference_variables="theta",
        inference_conditions="x",
    )  # fmt: skip
    return sim, wf


def test_a_random_draw_loss_is_validated_as_the_mean_of_its_draws():
    # flow matching draws a time and a noise vector per example: its per-example validation
    # loss is the mean of RandomDrawLoss.validation_draws = 16 draws, so the differences
    # between two validation keys spread 4x less than single draws' (sqrt(16)). Tolerance:
    # the sd of 400 differences of these skewed losses is within about 10% of its value, so
    # the ratio of two such sds lies in [3, 5.3] (excluding 8 draws, 2.8, and 32, 5.7)
    from amortized.networks.base import RandomDrawLoss

    assert bf.networks.FlowMatching.validation_draws == RandomDrawLoss.validation_draws == 16
    sim, wf = _flow_matching_workflow()
    data = sim.sample(400, seed=0)
    wf.fit_offline(data, epochs=1, early_stopping=False, seed=1, progress=False)
    ap = wf.approximator
    rows = ap.to_network_arrays(data, where="test")
    ka, kb = jax.random.split(jax.random.key(3))
    mean16 = [fit_module._eval_losses(ap.nets, ap.stats, rows, k, core.loss, 50) for k in (ka, kb)]

    def single(key):
        keys = jax.random.split(key, 400)
        one = jax.tree.map(lambda a: a[:, None], rows)
        return jax.vmap(lambda r, k: core.loss(ap.nets, ap.stats, r, k, False))(one, keys)

    sd16 = float(np.std(mean16[0] - mean16[1]))
    sd1 = float(np.std(single(ka) - single(kb)))
    assert 3.0 < sd1 / sd16 < 5.3, (sd1, sd16)


def test_each_network_brings_its_early_stopping_defaults(monkeypatch):
    # flow matching's loss is not in nats and is mostly noise: patience 50 and any gain
    # beyond chance counts; a coupling flow keeps patience 10 and MIN_GAIN; a patience
    # given by the user wins
    from amortized.approximators import fitting as approximator_fitting
    from amortized.training.stopping import MIN_GAIN, PlateauRule

    rules = []

    def recorded(**kwargs):
        rules.append(PlateauRule(**kwargs))
        return rules[-1]

    monkeypatch.setattr(approximator_fitting, "PlateauRule", recorded)
    sim, wf = _flow_matching_workflow()
    data = sim.sample(200, seed=0)
    wf.fit_offline(data, epochs=1, seed=1, progress=False)
    wf.fit_offline(data, epochs=1, seed=1, progress=False, patience=4)
    _, flow = _overfitting_workflow()
    flow.fit_offline(data, epochs=1, seed=1, progress=False)
    got = [(r.patience, r.min_gain) for r in rules]
    assert got == [(50, 0.0), (4, 0.0), (10, MIN_GAIN)]
    # settings of the class, not fields of the network's pytree (nor of its saved file)
    import dataclasses

    settings = {"validation_draws", "default_patience", "stopping_min_gain"}
    for net in (bf.networks.FlowMatching, bf.networks.CouplingFlow):
        assert not settings & {f.name for f in dataclasses.fields(net)}
