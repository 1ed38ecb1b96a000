"""Model comparison metrics against direct computations and calibrated synthetic
predictions."""

import numpy as np
import pytest

import amortized as bf
from amortized.diagnostics.model_comparison import (
    confusion_matrix,
    expected_calibration_error,
    model_comparison_diagnostics,
)


def _calibrated(n, k, rng):
    """Probabilities from a Dirichlet and models drawn from them: calibrated by design."""
    probs = rng.dirichlet(np.full(k, 0.7), size=n)
    models = np.array([rng.choice(k, p=p) for p in probs])
    return probs, models


def test_ece_equals_a_loop_over_bins(rng):
    probs, models = _calibrated(700, 3, rng)
    probs[:, 0] += 0.1 * (models == 0)  # miscalibrate model 0 upward
    probs /= probs.sum(axis=1, keepdims=True)
    got = expected_calibration_error(probs, models, num_bins=7)["values"]
    for k in range(3):
        total = 0.0
        for b in range(7):
            lo, hi = b / 7, (b + 1) / 7
            inside = (probs[:, k] >= lo) & ((probs[:, k] < hi) | (b == 6))
            if inside.any():
                gap = abs(probs[inside, k].mean() - np.mean(models[inside] == k))
                total += inside.sum() / len(models) * gap
        assert got[k] == pytest.approx(total, rel=1e-12)


def test_the_noise_floor_is_what_calibrated_predictions_show():
    # 200 replicates of 1000 calibrated predictions: the mean ECE and the mean predicted
    # floor agree within 10% (the normal approximation of each bin's binomial error; the
    # mean of 200 replicates has a relative standard error near 1%)
    rng = np.random.default_rng(7)
    ece, floor = [], []
    for _ in range(200):
        probs, models = _calibrated(1000, 2, rng)
        out = expected_calibration_error(probs, models)
        ece.append(out["values"].mean())
        floor.append(out["if_calibrated"].mean())
    assert np.mean(ece) == pytest.approx(np.mean(floor), rel=0.1)


def test_table_and_confusion_matrix_against_direct_formulas(rng):
    probs, models = _calibrated(500, 3, rng)
    onehot = np.eye(3)[models]
    table = model_comparison_diagnostics(probs, onehot, ["a", "b", "c"])
    pred = probs.argmax(axis=1)
    assert table.loc["accuracy", "all"] == pytest.approx(np.mean(pred == models))
    assert table.loc["accuracy", "b"] == pytest.approx(np.mean(pred[models == 1] == 1))
    assert table.loc["brier_score", "all"] == pytest.approx(
        np.mean(np.sum((probs - onehot) ** 2, axis=1))
    )
    assert table.loc["log_loss", "all"] == pytest.approx(
        -np.mean(np.log(probs[np.arange(500), models]))
    )
    cm = np.zeros((3, 3), int)
    for t, p in zip(models, pred, strict=True):
        cm[t, p] += 1
    np.testing.assert_array_equal(confusion_matrix(probs, models), cm)
    np.testing.assert_allclose(
        confusion_matrix(probs, models, normalize="true"), cm / cm.sum(1, keepdims=True)
    )
    assert table.attrs["confusion_matrix"] == cm.tolist()
    out = bf.diagnostics.metrics.brier_score(probs, onehot)
    assert float(out["values"]) == pytest.approx(table.loc["brier_score", "all"])
    assert float(bf.diagnostics.metrics.accuracy(probs, models)["values"]) == pytest.approx(
        table.loc["accuracy", "all"]
    )


def test_figures_and_bad_inputs(rng):
    probs, models = _calibrated(300, 2, rng)
    fig = bf.diagnostics.plots.mc_calibration(probs, models, ["x", "y"])
    assert len(fig.axes) == 2 and "ECE" in fig.axes[0].get_title()
    fig = bf.diagnostics.plots.mc_confusion_matrix(probs, models)
    assert fig.axes[0].get_title() == "Confusion matrix"
    with pytest.raises(ValueError, match="summing to 1"):
        expected_calibration_error(np.log(probs), models)
    with pytest.raises(ValueError, match="targets must be one-hot"):
        expected_calibration_error(probs, np.zeros((300, 3)))
    with pytest.raises(ValueError, match=r"lie in 0\.\.1"):
        expected_calibration_error(probs, np.full(300, 2))
    with pytest.raises(ValueError, match="normalize"):
        confusion_matrix(probs, models, normalize="rows")
