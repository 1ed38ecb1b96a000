"""Predictive check figures: simulated statistics against the observed ones."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ._layout import panels


def predictive_check(check, dataset: int | None = None) -> Figure:
    """One panel per statistic of a
    :class:`~amortized.diagnostics.predictive.PredictiveCheck`.

    Prior predictive, or posterior predictive of one dataset (``dataset``, or the only
    one): the histogram of the simulated statistic and the observed value(s) as vertical
    lines (red where flagged), with the p-value of a single dataset. Posterior predictive of
    several datasets: the histogram of the datasets' p-values (uniform for a statistic the
    posterior does not fit when the model is right; piled at 0 or 1 when it is not), the
    flagged count in the title."""
    names = list(check.names)
    n = check.observed.shape[0]
    if dataset is not None and not 0 <= dataset < n:
        raise IndexError(f"predictive_check: dataset {dataset} out of range for {n} datasets")
    if check.kind == "posterior" and dataset is None and n == 1:
        dataset = 0
    title = f"{check.kind.capitalize()} predictive check"
    if dataset is not None:
        title += f" (dataset {dataset})"
    fig, axes = panels(len(names), max_cols=4, title=title)
    flagged = check.flagged
    for j, (ax, name) in enumerate(zip(axes, names, strict=True)):
        if check.kind == "posterior" and dataset is None:
            p = check.p_value[:, j]
            ax.hist(p, bins=np.linspace(0, 1, 21), color="C0", alpha=0.7)
            ax.set_xlabel("posterior predictive p-value")
            ax.set_title(f"{name}: {int(flagged[:, j].sum())} of {n} flagged", fontsize="small")
            continue
        rep = (
            check.replicated[dataset, :, j] if check.kind == "posterior" else check.replicated[:, j]
        )
        ax.hist(rep, bins=40, color="C0", alpha=0.6, density=True)
        rows = range(n) if dataset is None else [dataset]
        for i in rows:
            ax.axvline(check.observed[i, j], color="C3" if flagged[i, j] else "0.2", lw=1.2)
        ax.set_xlabel(name)
        if dataset is not None or n == 1:
            i = 0 if dataset is None else dataset
            ax.set_title(f"{name}: p = {check.p_value[i, j]:.3f}", fontsize="small")
        else:
            ax.set_title(f"{name}: {int(flagged[:, j].sum())} of {n} flagged", fontsize="small")
    return fig
