"""The report of a model comparison classifier: same folder layout and JSON schema as a
posterior's report (:mod:`amortized.diagnostics.report`), with the figures ``loss``,
``calibration`` and ``confusion_matrix``, the metrics of
:func:`~amortized.diagnostics.model_comparison_diagnostics` (columns: models and ``"all"``)
and per model a calibration rating:

- ``"excellent"``: expected calibration error within ``ece_excellent`` (0.01) of what
  binomial noise alone gives on these datasets (``ece_if_calibrated``), ``"fair"`` within
  ``ece_fair`` (0.03), ``"poor"`` beyond (thresholds in
  :class:`~amortized.diagnostics.Thresholds`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from .model_comparison import MC_METRICS
from .ratings import THRESHOLDS, Thresholds, inspect_history
from .report import history_summary, report_header

EXPLANATIONS = {
    "loss": "Training (and validation) loss per epoch. Both should fall and flatten; a "
    "validation curve rising above the training curve signals overfitting.",
    "calibration": "For each model: how often it made the data, against the probability the "
    "classifier gave it (binned), with the band that binomial noise allows. A calibrated "
    "classifier follows the diagonal; below it the probabilities are overconfident.",
    "confusion_matrix": "Rows: the model that made the data; columns: the most probable "
    "model. Off-diagonal mass is expected where the models predict similar data; it is not "
    "a failure when the probabilities are calibrated.",
}


def calibration_rating(ece: float, floor: float, thresholds: Thresholds = THRESHOLDS) -> str:
    """``"excellent"`` / ``"fair"`` / ``"poor"`` from the excess of the expected
    calibration error over its noise floor."""
    excess = ece - floor
    if excess <= thresholds.ece_excellent:
        return "excellent"
    return "fair" if excess <= thresholds.ece_fair else "poor"


def model_comparison_report(
    table,
    history: Mapping[str, list] | None,
    configuration: Mapping[str, Any],
    thresholds: Thresholds = THRESHOLDS,
    title: str = "Model comparison report",
) -> dict:
    """The report as a JSON-serializable dict (the posterior report's schema; ``ratings``
    hold ``{"calibration", "summary"}`` per model)."""
    check = inspect_history(history, thresholds) if history else None
    models = [c for c in table.columns if c != "all"]
    ratings = {}
    for m in models:
        ece, floor = table.loc["expected_calibration_error", m], table.loc["ece_if_calibrated", m]
        rating = calibration_rating(ece, floor, thresholds)
        ratings[m] = {
            "calibration": rating,
            "summary": f"{rating} calibration (ECE {ece:.3f}, {floor:.3f} from noise alone); "
            f"accuracy {table.loc['accuracy', m]:.2f}",
        }
    steps = []
    poor = [m for m in models if ratings[m]["calibration"] == "poor"]
    if poor:
        steps.append(
            f"The probabilities of {poor} are miscalibrated: train on more simulations or "
            f"longer, and check the loss curve for overfitting."
        )
    chance = 1.0 / len(models)
    close = [m for m in models if table.loc["accuracy", m] < chance + 0.1]
    if close:
        steps.append(
            f"Datasets from {close} are often attributed to other models: the models "
            f"predict similar data at this sample size. With calibrated probabilities this is "
            f"an answer, not a fault; more informative data or summaries would separate them."
        )
    if check is not None and check.messages:
        steps.extend(check.messages)
    assessments = {
        "loss": "; ".join(check.messages)
        if check and check.messages
        else ("no problems found" if check else "no training history"),
        "calibration": "; ".join(f"{m}: {r['summary']}" for m, r in ratings.items()),
        "confusion_matrix": f"overall accuracy {table.loc['accuracy', 'all']:.3f}",
    }
    return {
        **report_header(title, configuration, table),
        "metric_descriptions": {m: MC_METRICS.get(m, "") for m in table.index},
        "ratings": {**ratings, "all": {"calibration": "", "summary": "all datasets"}},
        "history": history_summary(history, check),
        "next_steps": steps or ["No problems found."],
        "figures": {
            name: {"file": f"{name}.png", "explanation": text, "assessment": assessments[name]}
            for name, text in EXPLANATIONS.items()
        },
        "thresholds": asdict(thresholds),
    }
