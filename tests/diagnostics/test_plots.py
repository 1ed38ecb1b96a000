import numpy as np
import pytest
from matplotlib.figure import Figure

from amortized.diagnostics import plots


@pytest.fixture
def draws(posterior):
    return posterior(60, 100, seed=3)


@pytest.mark.parametrize(
    "fn", [plots.recovery, plots.calibration_ecdf, plots.coverage, plots.z_score_contraction]
)
def test_one_panel_per_variable(fn, draws):
    fig = fn(*draws)
    assert isinstance(fig, Figure)
    visible = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title().split()[0] for ax in visible] == ["theta[0]", "theta[1]"]


def test_loss_and_pairs(draws):
    fig = plots.loss({"loss": [3.0, 2.0, float("nan"), 1.0], "val_loss": [3.1, 2.2, 2.0, 1.5]})
    assert len(fig.axes[0].lines) >= 2
    with pytest.raises(KeyError, match="loss"):
        plots.loss({})
    est, tgt = draws
    prior = np.random.default_rng(0).normal(size=(50, 2))
    fig = plots.pairs_posterior(est, tgt, priors=prior, dataset_id=0)
    assert sum(ax.get_visible() for ax in fig.axes) == 3  # lower triangle of a 2 x 2 grid
    with pytest.raises(IndexError, match="dataset_id"):
        plots.pairs_posterior(est, dataset_id=60)
    fig = plots.pairs_samples({"a": np.zeros((30,)), "b": np.ones((30, 2))})
    assert sum(ax.get_visible() for ax in fig.axes) == 6
