"""Programmatic interpretation of the diagnostics: labels per variable, a check of the
training history, and an ordered list of next steps. No thresholds live anywhere else.

Calibration (from ``calibration_error`` ``e`` and ``log_gamma`` ``g`` over ``n`` datasets;
``floor = 0.3 / sqrt(n)`` is about the median error of an exact posterior, so the limits grow
when few datasets make noise alone exceed them):

- excellent: ``e <= max(0.03, 2 floor)`` and ``g >= 0``;
- fair: ``e <= max(0.07, 4 floor)``; poor otherwise.

Calibration issues (listed whatever the label, each needing both a material and a
significant deviation from what a calibrated posterior gives):

- biased: ``|rank_mean - 0.5| > max(0.05, 3 sqrt(1 / (12 n)))``; "overestimates" when the
  truth ranks low among the draws (rank_mean < 0.5);
- overconfident / underconfident: ``|log z_score_variance| > max(log 1.3, 3 sqrt(2 / n))``.
  For a calibrated posterior of any shape the z-scores have mean 0 and variance 1; a posterior
  too narrow by a factor ``c`` gives variance ``1 / c^2``, while a pure shift leaves it at 1
  (unlike the spread of the ranks, which a shift also changes), so bias and dispersion are
  told apart. Where the z-scores say nothing (e.g. a bimodal posterior, whose standard
  deviation spans both modes), an unbiased posterior is also called overconfident
  (underconfident) when ``coverage_gap < -max(0.05, 0.9 / sqrt(n))`` (``> +...``).

Recovery from NRMSE: excellent <= 0.05 < good <= 0.10 < fair <= 0.20 < poor; "not rated"
when the posterior is multimodal in at least ``multimodal`` (0.2) of the datasets
(``multimodal_fraction``, see :mod:`amortized.diagnostics.multimodality`): the distance of
draws from the truth then measures the distance between the modes, not an error, and no
change to the networks can shrink it. The next steps say so instead of advising changes.
Contraction: high >= 0.8 > medium >= 0.4 > low; "overconfident" when high meets poor
calibration.

Power-scaling sensitivity (:mod:`amortized.diagnostics.power_sensitivity`; priorsense's
rule): a side (prior or likelihood) is sensitive when its sensitivity, the largest shift of
the posterior's mean or quantiles (in posterior sd) or of its log sd per unit of
``log gamma``, is at least ``POWER_SENSITIVITY_THRESHOLD`` (0.1): halving or doubling the
prior's strength then moves the posterior by at least 0.07 sd (or its sd by 7%), about what
a reader of a posterior summary can notice; a normal prior holding a fifth of the
posterior precision is at the threshold. Both sensitive: "prior-data conflict"; the prior
only: "prior-dominated" (the likelihood is weak); the likelihood only:
"likelihood-dominated" (what a modeller usually wants); neither: "insensitive". Without a
likelihood measure (NaN, or a model without one): "prior-sensitive" or "insensitive".

Multiverse (:mod:`amortized.diagnostics.multiverse`), per dataset and parameter: "conclusion
differs" when some universes' central intervals exclude zero and others' do not (or the
posterior means' signs disagree while some interval excludes zero); otherwise
"choice-dependent" when the universes' posterior means spread by at least
``MULTIVERSE_SPREAD_THRESHOLD`` (0.5) of the posterior sd (``spread_ratio``: the choices
then move the answer by half of what the data leave uncertain); otherwise "robust".

Training history (losses may be negative, so differences are scaled by
``max(|final training loss|, 1)``):

- non-finite losses;
- overfitting: final validation minus final training loss > 0.10 of the scale, or the final
  validation loss above its best by > 0.05 of the scale;
- under-training: the training loss fell by > 0.02 of the scale over the last 20% of epochs
  (still improving), or fewer than 5 epochs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

POWER_SENSITIVITY_THRESHOLD = 0.1


def rate_power_sensitivity(prior, likelihood=None) -> np.ndarray:
    """The ratings of the module docstring for prior and likelihood sensitivities of any
    (equal) shape; ``likelihood=None`` rates the prior alone.

    >>> rate_power_sensitivity(np.array([0.2, 0.01, 0.2, 0.0]), np.array([0.3, 0.3, 0.0, 0.0]))
    array(['prior-data conflict', 'likelihood-dominated', 'prior-dominated',
           'insensitive'], dtype=object)
    """
    t = POWER_SENSITIVITY_THRESHOLD
    p = np.asarray(prior, np.float64) >= t
    if likelihood is None:
        return np.where(p, "prior-sensitive", "insensitive").astype(object)
    lik = np.asarray(likelihood, np.float64)
    if lik.shape != p.shape:
        raise ValueError(
            f"rate_power_sensitivity: prior {p.shape} and likelihood {lik.shape} differ"
        )
    lk = lik >= t
    both = np.where(lk, "prior-data conflict", "prior-dominated")
    rated = np.where(p, both, np.where(lk, "likelihood-dominated", "insensitive"))
    alone = np.where(p, "prior-sensitive", "insensitive")
    return np.where(np.isnan(lik), alone, rated).astype(object)


MULTIVERSE_SPREAD_THRESHOLD = 0.5
#: ensemble members disagree on a dataset when their posterior means spread by this share of
#: the posterior sd, or their log sds by this much: a 0.3 sd shift alone is a C2ST of 0.56
ENSEMBLE_DISAGREEMENT_THRESHOLD = 0.3


def rate_multiverse(spread_ratio, sign_agreement, excludes_zero) -> np.ndarray:
    """The multiverse ratings of the module docstring, for arrays of one shape.

    >>> rate_multiverse(np.array([0.1, 0.8, 0.1]), np.array([1.0, 1.0, 1.0]),
    ...                 np.array([1.0, 1.0, 0.5]))
    array(['robust', 'choice-dependent', 'conclusion differs'], dtype=object)
    """
    ratio = np.asarray(spread_ratio, np.float64)
    agree = np.asarray(sign_agreement, np.float64)
    excl = np.asarray(excludes_zero, np.float64)
    differs = ((excl > 0) & (excl < 1)) | ((agree < 1) & (excl > 0))
    spread = np.where(ratio >= MULTIVERSE_SPREAD_THRESHOLD, "choice-dependent", "robust")
    return np.where(differs, "conclusion differs", spread).astype(object)


REQUIRED_ROWS = (
    "nrmse",
    "log_gamma",
    "calibration_error",
    "rank_mean",
    "z_score_variance",
    "coverage_gap",
    "contraction",
)


@dataclass(frozen=True)
class Thresholds:
    """Every threshold used by the ratings (see the module docstring)."""

    calibration_excellent: float = 0.03
    calibration_fair: float = 0.07
    calibration_floor: float = 0.3
    bias_rank_mean: float = 0.05
    dispersion_ratio: float = 1.3
    coverage_gap: float = 0.05
    coverage_gap_se: float = 0.3
    significance_se: float = 3.0
    nrmse_excellent: float = 0.05
    nrmse_good: float = 0.10
    nrmse_fair: float = 0.20
    multimodal: float = 0.2
    contraction_high: float = 0.8
    contraction_medium: float = 0.4
    overfit_gap: float = 0.10
    overfit_rise: float = 0.05
    undertrained_improvement: float = 0.02
    undertrained_window: float = 0.2
    min_epochs: int = 5
    #: model comparison: expected calibration error above the binomial-noise floor
    ece_excellent: float = 0.01
    ece_fair: float = 0.03


THRESHOLDS = Thresholds()


@dataclass(frozen=True)
class VariableRating:
    variable: str
    calibration: str
    calibration_issues: tuple[str, ...]
    recovery: str
    contraction: str
    #: fraction of datasets with a multimodal posterior (NaN when not measured)
    multimodal_fraction: float = float("nan")

    @property
    def summary(self) -> str:
        issues = f" ({', '.join(self.calibration_issues)})" if self.calibration_issues else ""
        recovery = (
            f"recovery not rated (multimodal posterior in "
            f"{self.multimodal_fraction:.0%} of datasets)"
            if self.recovery == "not rated"
            else f"{self.recovery} recovery"
        )
        return f"{self.calibration} calibration{issues}; {recovery}; {self.contraction} contraction"


@dataclass(frozen=True)
class HistoryCheck:
    """Findings on a training history; ``checked`` lists what could be checked."""

    nonfinite: bool
    overfitting: bool | None
    undertrained: bool
    gap: float | None
    rise: float | None
    improvement: float | None
    num_epochs: int
    messages: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict:
        return asdict(self)


def _num_datasets(table) -> int:
    if "num_datasets" not in table.attrs:
        raise KeyError(
            "rate_diagnostics: the table has no attrs['num_datasets']; build it with "
            "default_diagnostics or workflow.compute_default_diagnostics"
        )
    return int(table.attrs["num_datasets"])


def rate_diagnostics(table, thresholds: Thresholds = THRESHOLDS) -> list[VariableRating]:
    """One :class:`VariableRating` per column of a :func:`default_diagnostics` table."""
    missing = [r for r in REQUIRED_ROWS if r not in table.index]
    if missing:
        raise KeyError(
            f"rate_diagnostics: the table lacks rows {missing}; it has {list(table.index)}"
        )
    t = thresholds
    n = _num_datasets(table)
    floor = t.calibration_floor / np.sqrt(n)
    out = []
    for var in table.columns:
        col = table[var]
        err, lg = float(col["calibration_error"]), float(col["log_gamma"])
        if err <= max(t.calibration_excellent, 2 * floor) and lg >= 0:
            cal = "excellent"
        elif err <= max(t.calibration_fair, 4 * floor):
            cal = "fair"
        else:
            cal = "poor"
        issues = []
        bias = float(col["rank_mean"]) - 0.5
        if abs(bias) > max(t.bias_rank_mean, t.significance_se * np.sqrt(1 / (12 * n))):
            issues.append("biased (overestimates)" if bias < 0 else "biased (underestimates)")
        disp = float(np.log(max(float(col["z_score_variance"]), 1e-300)))
        gap = float(col["coverage_gap"])
        gap_limit = max(t.coverage_gap, t.significance_se * t.coverage_gap_se / np.sqrt(n))
        if abs(disp) > max(np.log(t.dispersion_ratio), t.significance_se * np.sqrt(2 / n)):
            issues.append("overconfident" if disp > 0 else "underconfident")
        elif not issues and abs(gap) > gap_limit:
            issues.append("overconfident" if gap < 0 else "underconfident")
        e = float(col["nrmse"])
        rec = (
            "excellent"
            if e <= t.nrmse_excellent
            else "good"
            if e <= t.nrmse_good
            else "fair"
            if e <= t.nrmse_fair
            else "poor"
        )
        modal = float(col["multimodal_fraction"]) if "multimodal_fraction" in col else np.nan
        if modal >= t.multimodal:
            rec = "not rated"
        c = float(col["contraction"])
        con = (
            "high" if c >= t.contraction_high else "medium" if c >= t.contraction_medium else "low"
        )
        if con == "high" and cal == "poor":
            con = "overconfident"
        out.append(VariableRating(str(var), cal, tuple(issues), rec, con, modal))
    return out


def inspect_history(
    history: Mapping[str, Sequence[float]], thresholds: Thresholds = THRESHOLDS
) -> HistoryCheck:
    """Check a training history ``{"loss": [...], "val_loss": [...]}`` (see module doc)."""
    if not isinstance(history, Mapping) or "loss" not in history:
        raise KeyError(
            f"inspect_history: history needs a 'loss' list, got "
            f"{sorted(history) if isinstance(history, Mapping) else type(history).__name__}"
        )
    t = thresholds
    loss = np.asarray(history["loss"], np.float64)
    val = np.asarray(history.get("val_loss") or [], np.float64)
    if loss.size == 0:
        raise ValueError("inspect_history: the history has no epochs (empty 'loss')")
    msgs = []
    nonfinite = bool(not np.all(np.isfinite(loss)) or not np.all(np.isfinite(val)))
    if nonfinite:
        msgs.append("non-finite losses in the training history")
    finite = loss[np.isfinite(loss)]
    scale = max(abs(float(finite[-1])) if finite.size else 1.0, 1.0)
    gap = rise = None
    overfitting = None
    # the networks kept: the restored best epoch (early stopping, restore_best), else the last
    kept = history.get("restored_epoch") or len(loss)
    kept = min(int(kept), len(loss), max(val.size, 1)) - 1
    if val.size and np.all(np.isfinite(val)) and np.isfinite(loss[kept]):
        gap = float(val[kept] - loss[kept]) / scale
        rise = float(val[kept] - val.min()) / scale
        overfitting = gap > t.overfit_gap or rise > t.overfit_rise
        if overfitting:
            msgs.append(
                f"overfitting: final validation loss exceeds the training loss by "
                f"{gap:.3f} and its best by {rise:.3f} (in units of max(|loss|, 1))"
            )
    elif not val.size:
        msgs.append("overfitting not checked: the history has no validation loss")
    improvement = None
    if history.get("stopped_epoch"):
        # early stopping ended training because the held-out loss stopped improving: a
        # still-falling training loss then is memorization, not a reason to train longer
        undertrained = False
    elif len(loss) < t.min_epochs:
        undertrained = True
        msgs.append(f"only {len(loss)} epochs: too few to judge convergence")
    else:
        start = int(np.floor(len(loss) * (1 - t.undertrained_window)))
        start = min(start, len(loss) - 2)
        improvement = float(loss[start] - loss[-1]) / scale
        undertrained = bool(np.isfinite(improvement) and improvement > t.undertrained_improvement)
        if undertrained:
            msgs.append(
                f"still improving: the training loss fell by {improvement:.3f} over the last "
                f"{len(loss) - start} epochs"
            )
    return HistoryCheck(
        nonfinite, overfitting, undertrained, gap, rise, improvement, len(loss), tuple(msgs)
    )


def combine_history_checks(checks: Mapping[str, HistoryCheck]) -> HistoryCheck:
    """One check for several networks trained together (an ensemble's members, by name):
    a finding of any member is a finding of the whole, its message prefixed with the
    member's name; the numbers are the worst member's."""
    if not checks:
        raise ValueError("combine_history_checks: no checks")
    cs = list(checks.values())

    def worst(attr):
        vals = [getattr(c, attr) for c in cs if getattr(c, attr) is not None]
        return max(vals) if vals else None

    over = [c.overfitting for c in cs if c.overfitting is not None]
    return HistoryCheck(
        nonfinite=any(c.nonfinite for c in cs),
        overfitting=any(over) if over else None,
        undertrained=any(c.undertrained for c in cs),
        gap=worst("gap"),
        rise=worst("rise"),
        improvement=worst("improvement"),
        num_epochs=max(c.num_epochs for c in cs),
        messages=tuple(f"{name}: {m}" for name, c in checks.items() for m in c.messages),
    )


def next_steps(
    ratings: Sequence[VariableRating],
    history: HistoryCheck | None,
    first: Sequence[str] = (),
) -> list[str]:
    """An ordered list of actions, most urgent first; ``first``: actions found by checks
    outside the ratings (an ensemble's disagreement), put before the others."""
    steps = list(first)
    if history is not None:
        if history.nonfinite:
            steps.append(
                "Fix the non-finite losses first: lower the learning rate, check the simulator "
                "for extreme or non-finite outputs, and standardize or transform (log, "
                "constrain) wide-ranging variables."
            )
        if history.undertrained:
            steps.append("Train longer (more epochs): the training loss is still falling.")
        if history.overfitting:
            steps.append(
                "Reduce overfitting: simulate more training data (or train online), or use "
                "a smaller network or stronger regularization."
            )
    poor = [r.variable for r in ratings if r.calibration == "poor"]
    over = [r.variable for r in ratings if "overconfident" in r.calibration_issues]
    under = [r.variable for r in ratings if "underconfident" in r.calibration_issues]
    biased = [r.variable for r in ratings if any("biased" in i for i in r.calibration_issues)]
    if over:
        steps.append(
            f"Posteriors of {over} are too narrow (overconfident): do not use them for "
            "decisions yet; train longer or on more simulations, and check that the summary "
            "network sees all informative data."
        )
    if biased:
        steps.append(
            f"Posteriors of {biased} are shifted (biased): train longer or on more "
            "simulations; check the adapter's transforms and that the conditions carry the "
            "information about these parameters."
        )
    if under:
        steps.append(
            f"Posteriors of {under} are too wide (underconfident): usable but conservative; "
            "more training or a more expressive network would sharpen them."
        )
    rest = [v for v in poor if v not in over + biased + under]
    if rest:
        steps.append(
            f"Calibration of {rest} is poor: inspect the calibration ECDF and coverage plots."
        )
    weak = [
        r.variable for r in ratings if r.recovery in ("fair", "poor") and r.calibration != "poor"
    ]
    if weak:
        steps.append(
            f"Recovery of {weak} is weak although calibration holds: the data may not "
            "identify them (check contraction), or a larger summary network / more informative "
            "summaries may help."
        )
    modal = [r.variable for r in ratings if r.recovery == "not rated"]
    if modal:
        steps.append(
            f"Posteriors of {modal} are multimodal in many test datasets: the distance of "
            "draws (or their median) from the truth measures the distance between modes, so "
            "recovery and NRMSE do not apply, and a larger network would not change them. "
            "Judge these variables by calibration (and by C2ST against a reference posterior "
            "where one exists)."
        )
    low = [r.variable for r in ratings if r.contraction == "low" and r.variable not in modal]
    if low:
        steps.append(
            f"Little is learned about {low} (low contraction): expected if the data are "
            "uninformative about them; otherwise revisit the observation model or summaries."
        )
    if not steps:
        steps.append(
            "All diagnostics pass: apply the approximator to observed data, and check that "
            "those data lie within the training distribution."
        )
    return steps
