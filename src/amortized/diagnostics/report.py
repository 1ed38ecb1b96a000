"""Write the diagnostic report folder that a person reads and a program parses.

Files (fixed names):

- ``loss.png``, ``recovery.png``, ``calibration_ecdf.png``, ``coverage.png``,
  ``z_score_contraction.png``: the figures;
- ``metrics.csv``: the default diagnostics table (rows: metrics; columns: variables);
- ``history.json``: the training history;
- ``report.md``: configuration, each figure with an explanation and its assessment, the
  numeric summary with labels, next steps;
- ``report.html``: the same, self-contained (figures embedded as base64 PNG);
- ``report.json``: the same content, machine-readable. Schema (``schema_version`` 1)::

    {
      "schema_version": 1,
      "title": str, "created": ISO-8601 str, "amortized_version": str,
      "configuration": {str: str | number | bool | null},
      "num_datasets": int, "num_samples": int,
      "metrics": {metric: {variable: number | null}},   # null where not finite
      "metric_descriptions": {metric: str},
      "ratings": {variable: {"calibration": "excellent" | "fair" | "poor",
                             "calibration_issues": [str],
                             "recovery": "excellent" | "good" | "fair" | "poor",
                             "contraction": "high" | "medium" | "low" | "overconfident",
                             "summary": str}},
      "history": {"num_epochs": int, "final_loss": number | null,
                  "final_val_loss": number | null, "nonfinite": bool,
                  "overfitting": bool | null, "undertrained": bool, "messages": [str]},
      "next_steps": [str],
      "figures": {name: {"file": str, "explanation": str, "assessment": str}},
      "thresholds": {name: number}
    }
"""

from __future__ import annotations

import base64
import csv
import datetime
import html
import json
import math
import os
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .default import DEFAULT_METRICS
from .ratings import THRESHOLDS, HistoryCheck, Thresholds, VariableRating

SCHEMA_VERSION = 1
FIGURES = ("loss", "recovery", "calibration_ecdf", "coverage", "z_score_contraction")

EXPLANATIONS = {
    "loss": "Training (and validation) loss per epoch. Both should fall and flatten; a "
    "validation curve rising above the training curve signals overfitting.",
    "recovery": "Posterior median (dot) and 95% central interval (bar) against the true "
    "value for held-out simulations. Points near the diagonal mean the parameter is recovered; "
    "wide bars mean the data carry little information about it.",
    "calibration_ecdf": "Simulation-based calibration: the ECDF of the rank of each true "
    "value among its posterior draws, minus the uniform CDF, with the simultaneous 95% band. "
    "A calibrated posterior stays inside the band.",
    "coverage": "Empirical coverage of central credible intervals against their nominal "
    "level, with a 95% interval for the true coverage. Below the diagonal: intervals too "
    "narrow (overconfident); above: too wide.",
    "z_score_contraction": "Per held-out dataset: how much the posterior shrank relative to "
    "the prior (x) and how far its mean lies from the truth in posterior standard deviations "
    "(y). Good: right side, |z| small.",
}


def _finite(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _assessments(ratings: list[VariableRating], table, history: HistoryCheck | None) -> dict:
    def per_var(fn):
        return "; ".join(f"{r.variable}: {fn(r)}" for r in ratings)

    def calib(r):
        issues = f" ({', '.join(r.calibration_issues)})" if r.calibration_issues else ""
        return f"{r.calibration}{issues}"

    lg = table.loc["log_gamma"]
    return {
        "loss": "; ".join(history.messages)
        if history and history.messages
        else ("no problems found" if history else "no training history"),
        "recovery": per_var(
            lambda r: (
                f"not rated: multimodal posterior in {r.multimodal_fraction:.0%} of datasets"
                if r.recovery == "not rated"
                else f"{r.recovery} recovery"
            )
        ),
        "calibration_ecdf": per_var(
            lambda r: (
                ("inside" if lg[r.variable] >= 0 else "outside")
                + f" the band (log gamma {lg[r.variable]:.2f}), {calib(r)} calibration"
            )
        ),
        "coverage": per_var(
            lambda r: f"coverage gap {table.loc['coverage_gap', r.variable]:+.3f}, {calib(r)}"
        ),
        "z_score_contraction": per_var(lambda r: f"{r.contraction} contraction"),
    }


def build_report(
    table,
    ratings: list[VariableRating],
    history: Mapping[str, list] | None,
    history_check: HistoryCheck | None,
    next_steps: list[str],
    configuration: Mapping[str, Any],
    thresholds: Thresholds = THRESHOLDS,
    title: str = "Diagnostic report",
) -> dict:
    """The report as a JSON-serializable dict (the schema in the module docstring)."""
    assessments = _assessments(ratings, table, history_check)
    return {
        **report_header(title, configuration, table),
        "metric_descriptions": {m: DEFAULT_METRICS.get(m, "") for m in table.index},
        "ratings": {
            r.variable: {
                "calibration": r.calibration,
                "calibration_issues": list(r.calibration_issues),
                "recovery": r.recovery,
                "contraction": r.contraction,
                "summary": r.summary,
            }
            for r in ratings
        },
        "history": history_summary(history, history_check),
        "next_steps": list(next_steps),
        "figures": {
            name: {
                "file": f"{name}.png",
                "explanation": EXPLANATIONS[name],
                "assessment": assessments[name],
            }
            for name in FIGURES
        },
        "thresholds": asdict(thresholds),
    }


def report_header(title: str, configuration: Mapping[str, Any], table) -> dict:
    """The report's schema version, title, creation time, version, configuration, table
    size and metrics (``table``: rows metrics, columns variables or models)."""
    from .. import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "amortized_version": __version__,
        "configuration": {str(k): _finite(v) for k, v in configuration.items()},
        "num_datasets": int(table.attrs.get("num_datasets", 0)),
        "num_samples": int(table.attrs.get("num_samples", 0)),
        "metrics": {
            m: {str(v): _finite(float(table.loc[m, v])) for v in table.columns} for m in table.index
        },
    }


def counted_ratings(rating, names, key: str) -> dict[str, dict]:
    """Per variable, the labels of its datasets (``rating (num_datasets, dim)``): the most
    common under ``key``, the count of each under ``"datasets"``, and a ``"summary"``."""
    from collections import Counter

    out = {}
    for j, name in enumerate(names):
        counts = Counter(rating[:, j].tolist())
        out[name] = {
            key: counts.most_common(1)[0][0],
            "datasets": {str(k): int(v) for k, v in counts.items()},
            "summary": "; ".join(f"{k}: {v} dataset(s)" for k, v in counts.most_common()),
        }
    return out


def analysis_report(
    title: str,
    configuration: Mapping[str, Any],
    table,
    descriptions: Mapping[str, str],
    ratings: Mapping[str, dict],
    history: Mapping[str, list] | None,
    check: HistoryCheck | None,
    next_steps: list[str],
    explanations: Mapping[str, str],
    assessments: Mapping[str, str],
    thresholds: Mapping[str, Any],
) -> dict:
    """A report of an analysis (sensitivity, multiverse) in the posterior report's schema:
    one figure per entry of ``explanations``."""
    return {
        **report_header(title, configuration, table),
        "metric_descriptions": {m: descriptions.get(m, "") for m in table.index},
        "ratings": dict(ratings),
        "history": history_summary(history, check),
        "next_steps": list(next_steps),
        "figures": {
            name: {"file": f"{name}.png", "explanation": text, "assessment": assessments[name]}
            for name, text in explanations.items()
        },
        "thresholds": dict(thresholds),
    }


def history_summary(history: Mapping[str, list] | None, check: HistoryCheck | None) -> dict:
    """The report's ``"history"`` entry."""
    hist = dict(history or {})
    loss, val = list(hist.get("loss") or []), list(hist.get("val_loss") or [])
    return {
        "num_epochs": len(loss),
        "final_loss": _finite(float(loss[-1])) if loss else None,
        "final_val_loss": _finite(float(val[-1])) if val else None,
        "nonfinite": bool(check.nonfinite) if check else False,
        "overfitting": check.overfitting if check else None,
        "undertrained": bool(check.undertrained) if check else False,
        "messages": list(check.messages) if check else [],
    }


def _scope(rep: dict) -> str:
    what = (
        f"{rep['num_samples']} posterior draws each"
        if rep["num_samples"]
        else "predicted model probabilities"
    )
    return f"{rep['num_datasets']} held-out simulated datasets, {what}"


def _cell(x: Any) -> str:
    return str(x).replace("|", "\\|")


def _markdown(rep: dict) -> str:
    lines = [
        f"# {rep['title']}",
        "",
        f"Created {rep['created']} with amortized {rep['amortized_version']}; {_scope(rep)}.",
        "",
        "## Configuration",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    lines += [f"| {_cell(k)} | {_cell(v)} |" for k, v in rep["configuration"].items()]
    lines += ["", "## Summary", "", "| variable | rating |", "|---|---|"]
    lines += [f"| {v} | {r['summary']} |" for v, r in rep["ratings"].items()]
    lines += ["", "## Next steps", ""]
    lines += [f"{i}. {s}" for i, s in enumerate(rep["next_steps"], 1)]
    lines += ["", "## Figures", ""]
    for name, f in rep["figures"].items():
        lines += [
            f"### {name}",
            "",
            f"![{name}]({f['file']})",
            "",
            f["explanation"],
            "",
            f"**Assessment:** {f['assessment']}",
            "",
        ]
    variables = list(rep["ratings"])
    lines += [
        "## Metrics",
        "",
        "| metric | " + " | ".join(variables) + " | meaning |",
        "|---|" + "---|" * (len(variables) + 1),
    ]
    for m, vals in rep["metrics"].items():
        cells = ["n/a" if vals[v] is None else f"{vals[v]:.4g}" for v in variables]
        lines.append(
            f"| {m} | " + " | ".join(cells) + f" | {_cell(rep['metric_descriptions'][m])} |"
        )
    h = rep["history"]
    lines += [
        "",
        "## Training",
        "",
        f"{h['num_epochs']} epochs; final loss "
        f"{h['final_loss']}, final validation loss {h['final_val_loss']}.",
        "",
    ]
    lines += [f"- {m}" for m in h["messages"]] or ["- no problems found"]
    return "\n".join(lines) + "\n"


def _html(rep: dict, folder: Path) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{e(rep['title'])}</title><style>body{{font-family:sans-serif;max-width:1100px;"
        "margin:2em auto;padding:0 1em}table{border-collapse:collapse}td,th{border:1px solid "
        "#ccc;padding:3px 8px;text-align:left}img{max-width:100%}</style></head><body>",
        f"<h1>{e(rep['title'])}</h1><p>Created {e(rep['created'])} with amortized "
        f"{e(rep['amortized_version'])}; {e(_scope(rep))}.</p><h2>Configuration</h2><table>",
    ]
    parts += [
        f"<tr><td>{e(k)}</td><td>{e(str(v))}</td></tr>" for k, v in rep["configuration"].items()
    ]
    parts.append("</table><h2>Summary</h2><table><tr><th>variable</th><th>rating</th></tr>")
    parts += [
        f"<tr><td>{e(v)}</td><td>{e(r['summary'])}</td></tr>" for v, r in rep["ratings"].items()
    ]
    parts.append("</table><h2>Next steps</h2><ol>")
    parts += [f"<li>{e(s)}</li>" for s in rep["next_steps"]]
    parts.append("</ol><h2>Figures</h2>")
    for name, f in rep["figures"].items():
        data = base64.b64encode((folder / f["file"]).read_bytes()).decode("ascii")
        parts.append(
            f"<h3>{e(name)}</h3><img id='{e(name)}' alt='{e(name)}' "
            f"src='data:image/png;base64,{data}'><p>{e(f['explanation'])}</p>"
            f"<p><b>Assessment:</b> {e(f['assessment'])}</p>"
        )
    variables = list(rep["ratings"])
    parts.append(
        "<h2>Metrics</h2><table><tr><th>metric</th>"
        + "".join(f"<th>{e(v)}</th>" for v in variables)
        + "<th>meaning</th></tr>"
    )
    for m, vals in rep["metrics"].items():
        cells = "".join(
            f"<td>{'n/a' if vals[v] is None else f'{vals[v]:.4g}'}</td>" for v in variables
        )
        parts.append(f"<tr><td>{e(m)}</td>{cells}<td>{e(rep['metric_descriptions'][m])}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts)


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_report(
    path: str | os.PathLike,
    report: dict,
    figures: Mapping[str, Any],
    table,
    history: Mapping[str, list] | None,
    dpi: int = 110,
) -> Path:
    """Write the folder ``path`` (created if needed): every file listed in the module
    docstring. ``figures`` must hold a matplotlib Figure under each name in the report's
    ``"figures"`` (:data:`FIGURES` for a posterior's report); they are cleared once
    written (made for the report, they would otherwise hold their artists until collected).
    Returns the folder."""
    try:
        return _write_report(path, report, figures, table, history, dpi)
    finally:
        for f in figures.values():
            if hasattr(f, "clear"):  # anything else was refused by name above
                f.clear()


def _write_report(path, report, figures, table, history, dpi) -> Path:
    names = list(report.get("figures") or FIGURES)
    missing = [f for f in names if f not in figures]
    if missing:
        raise KeyError(f"write_report: figures lack {missing}; got {sorted(figures)}")
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        figures[name].savefig(folder / f"{name}.png", dpi=dpi)
    with open(folder / "metrics.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["metric", *map(str, table.columns)])
        for m in table.index:
            w.writerow([m, *(repr(float(x)) for x in table.loc[m])])
    _atomic_write(folder / "history.json", json.dumps(dict(history or {}), indent=1).encode())
    _atomic_write(folder / "report.json", json.dumps(report, indent=1).encode())
    _atomic_write(folder / "report.md", _markdown(report).encode())
    _atomic_write(folder / "report.html", _html(report, folder).encode())
    return folder
