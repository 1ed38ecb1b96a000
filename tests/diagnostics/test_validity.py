"""The acceptance checks of the diagnostics: an exact posterior passes, and overconfident,
underconfident and biased versions are each flagged with the right label (500 datasets of a
conjugate normal model, seeded)."""

import pytest

from amortized.diagnostics import diagnose
from amortized.diagnostics.ecdf import ecdf_bands
from amortized.diagnostics.sbc import fractional_ranks

N, S = 500, 1000


def test_exact_posterior_passes(posterior):
    draws, theta = posterior(N, S, seed=0)
    dx = diagnose(draws, theta)
    t = dx.table
    # per variable these pass with probability 0.95 (log gamma) and ~1 (error <= 0.03 is 2.5x
    # the median error of an exact posterior with 500 datasets); seed 0 passes for both
    assert (t.loc["log_gamma"] >= 0).all()
    assert (t.loc["calibration_error"] <= 0.03).all()
    frac = fractional_ranks(draws, theta)
    bands = ecdf_bands(N)
    for j in range(frac.shape[1]):
        ecdf = (frac[None, :, j] <= bands.z[:, None]).mean(axis=1)
        assert ((ecdf >= bands.lower) & (ecdf <= bands.upper)).all()
    for r in dx.ratings:
        assert r.calibration == "excellent" and r.calibration_issues == ()


@pytest.mark.parametrize(
    "scale, shift, label",
    [
        (0.7, 0.0, "overconfident"),
        (1.4, 0.0, "underconfident"),
        (1.0, 0.5, "biased (overestimates)"),
        (1.0, -0.5, "biased (underestimates)"),
    ],
)
def test_miscalibration_is_named(posterior, scale, shift, label):
    draws, theta = posterior(N, S, seed=0, scale=scale, shift=shift)
    dx = diagnose(draws, theta)
    for r in dx.ratings:
        assert r.calibration != "excellent"
        # exactly the one issue that was built in, nothing else
        assert r.calibration_issues == (label,)
    assert any(label.split(" ")[0] in s for s in dx.next_steps)


def test_overconfident_contraction_label(posterior):
    # a posterior 3x too narrow: contraction 1 - 0.5 / 9 ... high, and calibration poor
    draws, theta = posterior(N, 200, seed=1, scale=0.2)
    dx = diagnose(draws, theta)
    assert all(r.contraction == "overconfident" for r in dx.ratings)
    assert all(r.calibration == "poor" for r in dx.ratings)
