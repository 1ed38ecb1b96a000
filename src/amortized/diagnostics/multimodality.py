"""Multimodal posteriors: where a point estimate, and so recovery, does not apply.

NRMSE and the recovery correlation compare draws or their median with the true value. For a
posterior with two separated modes (two moons, a mixture's label switching, a sign that the
data cannot tell) the median falls between the modes, where the posterior has almost no mass,
and the "error" is the distance between the modes however exact the posterior is. Telling
the user to grow the summary network would then be wrong advice.

Test per dataset and variable: a histogram of the draws (``BINS`` bins over their central
99%), smoothed with the kernel (1, 2, 1) / 4, and its local maxima. The draws are multimodal
when two maxima, each at least ``PEAK`` (0.2) of the highest, are separated by a valley below
``VALLEY`` (0.5) of the lower one. A unimodal density has one maximum; sampling noise makes
small bumps only where counts are low, below the ``PEAK`` floor (with 1,000 draws the central
bins of a normal hold about 100 draws, and a bump must reach 20 with a dip to half of it). The
metric is the fraction of datasets where that happens.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._arrays import Metric, as_draws

BINS = 20
PEAK = 0.2
VALLEY = 0.5


def _is_multimodal(x: np.ndarray) -> bool:
    """True when the 1-D draws ``x`` have two separated modes (see the module docstring)."""
    lo, hi = np.quantile(x, [0.005, 0.995])
    if not hi > lo:
        return False
    counts, _ = np.histogram(x, bins=BINS, range=(lo, hi))
    h = np.convolve(np.pad(counts.astype(float), 1), [0.25, 0.5, 0.25], mode="valid")
    inner = (h[1:-1] >= h[:-2]) & (h[1:-1] > h[2:])
    peaks = [i for i in np.flatnonzero(np.r_[h[0] > h[1], inner, h[-1] > h[-2]])]
    peaks = [i for i in peaks if h[i] >= PEAK * h.max()]
    for a, b in zip(peaks[:-1], peaks[1:], strict=True):
        if h[a : b + 1].min() < VALLEY * min(h[a], h[b]):
            return True
    return False


def multimodal_fraction(
    estimates: Mapping[str, Any] | np.ndarray,
    targets: Mapping[str, Any] | np.ndarray,
    variable_names: Sequence[str] | None = None,
) -> Metric:
    """Fraction of datasets whose posterior draws of each variable are multimodal (two
    modes with a deep valley between them; see the module docstring). Draws need at least 100
    per dataset for the histogram; with fewer the fraction is NaN.

    >>> rng = np.random.default_rng(0)
    >>> two = rng.choice([-3.0, 3.0], size=(20, 1000, 1)) + rng.normal(size=(20, 1000, 1))
    >>> float(multimodal_fraction(two, np.zeros((20, 1))).values[0])
    1.0
    >>> float(multimodal_fraction(rng.normal(size=(20, 1000, 1)), np.zeros((20, 1))).values[0])
    0.0
    """
    d = as_draws("multimodal_fraction", estimates, targets, variable_names)
    n, s, dim = d.estimates.shape
    if s < 100:
        return Metric("multimodal_fraction", np.full(dim, np.nan), d.names)
    flags = np.array([[_is_multimodal(d.estimates[i, :, j]) for j in range(dim)] for i in range(n)])
    return Metric("multimodal_fraction", flags.mean(axis=0), d.names, {"multimodal": flags})
