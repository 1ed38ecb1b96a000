"""How much conclusions depend on analytic choices: summaries of every universe's posterior
and their agreement across universes (multiverse analysis).

From draws ``(num_datasets, num_universes, S, dim)``, per dataset, universe and parameter:
``mean``, ``sd`` and the central ``interval`` (``lo``, ``hi``); and across universes, per
dataset and parameter:

- ``sign_agreement``: the share of universes whose posterior mean has the majority's sign;
- ``excludes_zero``: the share of universes whose central interval excludes zero;
- ``between_sd``: the sd of the universes' posterior means, and ``within_sd``: the root mean
  of their posterior variances; ``spread_ratio = between_sd / within_sd``: near 0 when the
  choices hardly matter next to the posterior uncertainty, 1 when they move the answer as
  much as the data leave it uncertain;
- per choice, ``choice_effect``: the sd over its options of the posterior mean averaged over
  the other choices, in ``within_sd`` (which choice drives the spread).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


def universe_summaries(draws: np.ndarray, interval: float = 0.9) -> dict[str, np.ndarray]:
    """``mean``, ``sd``, ``lo``, ``hi`` ``(num_datasets, num_universes, dim)`` of draws
    ``(num_datasets, num_universes, S, dim)``."""
    x = np.asarray(draws, np.float64)
    if x.ndim != 4:
        raise ValueError(
            f"universe_summaries: draws must be (num_datasets, num_universes, S, dim), got "
            f"{x.shape}"
        )
    if not 0 < interval < 1:
        raise ValueError(f"universe_summaries: interval must lie in (0, 1), got {interval}")
    lo, hi = np.quantile(x, [(1 - interval) / 2, (1 + interval) / 2], axis=2)
    return {"mean": x.mean(axis=2), "sd": x.std(axis=2, ddof=1), "lo": lo, "hi": hi}


def multiverse_agreement(s: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The across-universe measures of the module docstring, each ``(num_datasets, dim)``,
    from :func:`universe_summaries`.

    >>> s = {"mean": np.array([[[1.0], [3.0]]]), "sd": np.ones((1, 2, 1)),
    ...      "lo": np.array([[[-0.6], [1.4]]]), "hi": np.array([[[2.6], [4.6]]])}
    >>> {k: float(v[0, 0]) for k, v in multiverse_agreement(s).items()}
    {'sign_agreement': 1.0, 'excludes_zero': 0.5, 'between_sd': 1.4142135623730951, \
'within_sd': 1.0, 'spread_ratio': 1.4142135623730951}
    """
    mean, sd = np.asarray(s["mean"]), np.asarray(s["sd"])
    positive = np.mean(mean > 0, axis=1)
    negative = np.mean(mean < 0, axis=1)
    excludes = np.mean((np.asarray(s["lo"]) > 0) | (np.asarray(s["hi"]) < 0), axis=1)
    between = mean.std(axis=1, ddof=1) if mean.shape[1] > 1 else np.zeros(positive.shape)
    within = np.sqrt(np.mean(sd**2, axis=1))
    return {
        "sign_agreement": np.maximum(positive, negative),
        "excludes_zero": excludes,
        "between_sd": between,
        "within_sd": within,
        "spread_ratio": between / np.maximum(within, np.finfo(np.float64).tiny),
    }


def choice_effects(
    mean: np.ndarray,
    within_sd: np.ndarray,
    universes: Sequence[Sequence[str]],
    choices: Sequence[str],
) -> dict[str, np.ndarray]:
    """Per choice, ``(num_datasets, dim)``: the sd over its options of the posterior mean
    averaged over the universes with that option, divided by ``within_sd``.
    ``mean (num_datasets, num_universes, dim)``; ``universes``: each universe's option per
    choice, in the order of ``mean``'s axis 1."""
    out = {}
    for j, c in enumerate(choices):
        options = sorted({u[j] for u in universes})
        per = [
            mean[:, [i for i, u in enumerate(universes) if u[j] == o]].mean(axis=1) for o in options
        ]
        spread = np.std(np.stack(per), axis=0, ddof=1) if len(per) > 1 else 0.0 * per[0]
        out[c] = spread / np.maximum(within_sd, np.finfo(np.float64).tiny)
    return out
