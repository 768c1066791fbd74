"""The training report a person reads: markdown with PNG plots, the rule baseline beside the
chosen model, every figure out of fold with people held out (see :mod:`.evaluate`).

Plots are drawn on :class:`matplotlib.figure.Figure` objects directly (never pyplot), so
writing a report needs no display, selects no backend and touches no global state.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from parkloop.interpret.dataset import TrainingSet
from parkloop.interpret.evaluate import (
    PARKED_MODE,
    Metrics,
    Scores,
    metrics,
    nested_threshold_f1,
    per_group,
    pooled,
)

PLOTS = {"pr_curve.png": "Precision-recall curves",
         "calibration.png": "Calibration of the chosen model",
         "confusion_by_mode.png": "Called parked by stated mode",
         "importance.png": "Permutation importance"}
"""the PNG files written beside ``report.md``, with their captions"""
TOP_FEATURES = 20
"""features shown in the importance plot"""
_DPI = 110
_NA = "n/a"  # an undefined figure, never a flattering 0 or 1
_PNG_META = {"Software": None}  # no matplotlib version in the file: same input, same bytes


def write_report(out_dir: Path, data: TrainingSet, candidates: list[Scores], chosen: str, *,
                 title: str, lineage: dict[str, str], end_to_end: dict[str, Any] | None = None,
                 baseline: str | None = None) -> Path:
    """Write ``out_dir/report.md`` and its plots (:data:`PLOTS`) for the out-of-fold
    ``candidates`` on ``data``; returns the markdown's path. ``chosen`` names the candidate
    being trained; ``baseline`` names the rule baseline (default: the first candidate).
    ``lineage`` (rules version, raw watermark, label set, spec, ...) and ``end_to_end``
    (scalars, and lists of dicts such as ``per_person``) are shown as given."""
    names = [c.name for c in candidates]
    baseline = names[0] if baseline is None and names else baseline
    problems = [f"{what} {n!r} is not among the candidates {names}"
                for what, n in (("chosen", chosen), ("baseline", baseline)) if n not in names]
    if len(set(names)) != len(names):
        problems.append(f"candidate names repeat: {names}")
    if not (data.y.any() and not data.y.all()):
        problems.append("a report needs both parked and not-parked leg ends")
    if problems:
        raise ValueError("; ".join(problems))
    out_dir.mkdir(parents=True, exist_ok=True)
    by_name = {c.name: c for c in candidates}
    best, base = by_name[chosen], by_name[str(baseline)]
    figures = {c.name: pooled(data, c) for c in candidates}
    nested = {c.name: nested_threshold_f1(data, c) for c in candidates}
    _pr_curve(out_dir / "pr_curve.png", data, candidates, chosen, figures)
    _calibration(out_dir / "calibration.png", data, best)
    _confusion_by_mode(out_dir / "confusion_by_mode.png", figures[chosen], chosen)
    _importance(out_dir / "importance.png", best)

    m = figures[chosen]
    people = len(set(data.groups.tolist()))
    lines = [f"# {title}", "", "## Lineage", "",
             *_table(["lineage", "value"], lineage.items()), "",
             "## Data", "",
             f"{m.n} labelled leg ends of {people} people, {m.positives} of them parked "
             f"(stated car, or confirmed by feedback). Cross-validated in {len(m.fold_f1)} folds "
             "grouped by person: nobody is in both the training and the test part of a fold, "
             "and every figure below is computed on the pooled out-of-fold predictions.", "",
             "## Candidates", "",
             *_table(["learner", "precision", "recall", "F1", "PR-AUC", "fold F1 min-max",
                      "threshold", "nested F1"],
                     ([_mark(c.name, chosen, str(baseline)), _f(figures[c.name].precision),
                       _f(figures[c.name].recall), _f(figures[c.name].f1),
                       _f(figures[c.name].pr_auc), _spread(figures[c.name].fold_f1),
                       _f(c.threshold), _f(nested[c.name])] for c in candidates)),
             "",
             f"Per fold, {chosen}: F1 {_list(m.fold_f1)}; PR-AUC {_list(m.fold_pr_auc)} "
             "(n/a where a fold lacks a class).", "",
             *_at_label_ends(data, candidates, chosen, str(baseline)),
             f"The threshold of {_f(best.threshold)} was chosen on the same out-of-fold scores "
             "it is judged on, which flatters F1 a little. The honest figure is the *nested F1*: "
             "each fold called at the threshold best on the other folds' scores. For "
             f"{chosen} it is {_f(nested[chosen])}, against {_f(nested[base.name])} for the "
             f"baseline ({base.name}).", "",
             "## The confusions that matter", "",
             *_confusions(figures[chosen], chosen, figures[base.name], base.name), "",
             "## Per person", "",
             f"{chosen} at threshold {_f(best.threshold)}, each person's own leg ends "
             "(n/a where a figure is undefined, e.g. no car ends).", "",
             *_table(["person", "labelled ends", "car ends", "precision", "recall", "F1"],
                     ([g, str(pm.n), str(pm.positives), _f(pm.precision), _f(pm.recall),
                       _f(pm.f1)] for g, pm in per_group(data, best))), ""]
    if end_to_end is not None:
        lines += ["## End to end", "", *_generic(end_to_end)]
    lines += ["## Plots", ""]
    lines += [f"![{caption}]({name})\n" for name, caption in PLOTS.items()]
    lines += ["## How to read this", "", _HOW_TO_READ, ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


_HOW_TO_READ = (
    "Each leg end is a moment a vehicle leg ended; it counts as parked when its person said "
    "they had come by car (or confirmed a parking), and as not parked for taxi, bus and the "
    "other modes. Precision is the share of ends called parked that were parkings; recall the "
    "share of parkings found; F1 their harmonic mean at the stated threshold; PR-AUC (average "
    "precision) summarises the whole precision-recall curve and does not depend on a "
    "threshold. Every model was tested only on people it never saw in training, so the figures "
    "say how it will do for a new person; the fold spread and the per-person table show how "
    "much that varies. Trust the nested F1 over the plain F1, compare every model with the rule "
    "baseline, and read the taxi and bus lines as the price of a false \"your car is here\". "
    "In the calibration plot a well-calibrated model follows the diagonal; the bars under it "
    "show where its scores fall.")


def _at_label_ends(data: TrainingSet, candidates: list[Scores], chosen: str,
                   baseline: str) -> list[str]:
    """The candidates' figures over the leg ends at a label's end only (without the halts
    inside non-car spans), where the training set has both."""
    if data.sources is None or not (data.sources == "inside").any():
        return []
    ends = data.sources != "inside"
    rows = []
    for c in candidates:
        e = metrics(data.y[ends], c.p[ends], c.threshold)
        rows.append([_mark(c.name, chosen, baseline), _f(e.precision), _f(e.recall), _f(e.f1),
                     _f(e.pr_auc)])
    return [f"Over the {int(ends.sum())} leg ends at a label's end only (leaving out the "
            f"{int((~ends).sum())} halts inside bus, train, ... spans, which are negatives "
            "too):", "", *_table(["learner", "precision", "recall", "F1", "PR-AUC"], rows), ""]


def _f(x: float) -> str:
    return _NA if math.isnan(x) else f"{x:.3f}"


def _list(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.2f}" if not math.isnan(v) else _NA for v in values) or _NA


def _spread(values: Sequence[float]) -> str:
    known = [v for v in values if not math.isnan(v)]
    if not known:
        return _NA
    missing = len(values) - len(known)
    return f"{min(known):.2f}-{max(known):.2f}" + (f" ({missing} undefined)" if missing else "")


def _mark(name: str, chosen: str, baseline: str) -> str:
    cell = f"**{name}** (chosen)" if name == chosen else name
    return cell + (" (baseline)" if name == baseline else "")


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = _NA if math.isnan(value) else f"{value:,.0f}" if abs(value) >= 1000 \
            else f"{value:.3f}"
    else:
        text = str(value)
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(_cell(v) for v in row) + " |" for row in rows)]


def _generic(values: dict[str, Any]) -> list[str]:
    """Scalars as one two-column table; each list of dicts (e.g. ``per_person``) and each dict
    as a table of its own."""
    scalars = [(k, v) for k, v in values.items() if not isinstance(v, list | dict)]
    lines = [*_table(["measure", "value"], scalars), ""] if scalars else []
    for key, value in values.items():
        if isinstance(value, dict):
            lines += [f"### {key}", "", *_table(["measure", "value"], value.items()), ""]
        elif isinstance(value, list):
            rows = [r if isinstance(r, dict) else {"value": r} for r in value]
            columns = list(dict.fromkeys(k for r in rows for k in r))
            lines += [f"### {key}", "",
                      *_table(columns, ([r.get(c, "") for c in columns] for r in rows)), ""]
    return lines


def _confusions(m: Metrics, name: str, b: Metrics, base: str) -> list[str]:
    ours = {c.mode: c for c in m.confusions}
    theirs = {c.mode: c for c in b.confusions}
    car = ours.get(PARKED_MODE)
    lines = []
    if car is not None:
        lines.append(f"- **car missed**: {name} called {car.n} of {car.total} car ends not "
                     f"parked ({car.share:.0%}); the baseline missed {theirs[PARKED_MODE].n}.")
    for mode, c in ours.items():
        if mode == PARKED_MODE:
            continue
        lines.append(f"- **car vs {mode}**: {name} called {c.n} of {c.total} {mode} ends "
                     f"parked ({c.share:.0%}); the baseline {theirs[mode].n} "
                     f"({theirs[mode].share:.0%}).")
    lines += ["", *_table(["stated mode", "ends", f"called parked: {name}",
                           f"called parked: {base}"],
                          ([mode, str(total), f"{hit} ({hit / total:.0%})",
                            f"{b.called_parked_by_mode[mode][0]}"]
                           for mode, (hit, total) in _mode_order(m)))]
    return lines


def _mode_order(m: Metrics) -> list[tuple[str, tuple[int, int]]]:
    """Car first, then the modes of the confusions (taxi, bus, ...), then feedback."""
    order = [c.mode for c in m.confusions]
    order += [k for k in m.called_parked_by_mode if k not in order]
    return [(k, m.called_parked_by_mode[k]) for k in order]


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=_DPI, metadata=_PNG_META)


def _pr_curve(path: Path, data: TrainingSet, candidates: list[Scores], chosen: str,
              figures: dict[str, Metrics]) -> None:
    fig = Figure(figsize=(6.4, 4.8), layout="constrained")
    ax = fig.add_subplot()
    for c in candidates:
        precision, recall, _ = precision_recall_curve(data.y, c.p)
        mine = c.name == chosen
        ax.plot(recall, precision, drawstyle="steps-post", linewidth=2.4 if mine else 1.2,
                alpha=1.0 if mine else 0.75, zorder=3 if mine else 2,
                label=f"{c.name} (PR-AUC {_f(figures[c.name].pr_auc)})")
    m = figures[chosen]
    ax.plot([m.recall], [m.precision], "o", color="black", zorder=4,
            label=f"operating point (threshold {_f(m.threshold)})")
    ax.axhline(m.positives / m.n, color="grey", linestyle=":", label="no skill")
    ax.set(xlabel="recall (parkings found)", ylabel="precision (calls that were parkings)",
           xlim=(0, 1.01), ylim=(0, 1.02), title="Parked: precision vs recall, out of fold")
    ax.legend(loc="lower left", fontsize="small")
    _save(fig, path)


def _calibration(path: Path, data: TrainingSet, scores: Scores) -> None:
    fig = Figure(figsize=(6.4, 6.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=[3, 1])
    observed, predicted = calibration_curve(data.y, scores.p, n_bins=10)
    top.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfectly calibrated")
    top.plot(predicted, observed, "o-", label=scores.name)
    top.set(ylabel="share actually parked", ylim=(-0.02, 1.02),
            title=f"Calibration of {scores.name}, out of fold")
    top.legend(loc="upper left", fontsize="small")
    bottom.hist(scores.p, bins=20, range=(0, 1), color="tab:blue", alpha=0.7)
    bottom.axvline(scores.threshold, color="black", linestyle="--", label="threshold")
    bottom.set(xlabel="predicted p(parked)", ylabel="leg ends", xlim=(0, 1))
    bottom.legend(loc="upper center", fontsize="small")
    _save(fig, path)


def _confusion_by_mode(path: Path, m: Metrics, name: str) -> None:
    rows = _mode_order(m)
    modes = [k for k, _ in rows]
    share = np.array([hit / total for _, (hit, total) in rows])
    colours = ["tab:green" if k == PARKED_MODE else "tab:grey" if k == "feedback"
               else "tab:red" for k in modes]
    fig = Figure(figsize=(max(4.8, 0.8 * len(modes) + 2), 4.2), layout="constrained")
    ax = fig.add_subplot()
    bars = ax.bar(modes, share, color=colours)
    ax.bar_label(bars, labels=[f"{hit}/{total}" for _, (hit, total) in rows], fontsize="small")
    ax.set(ylabel="share called parked", ylim=(0, 1.1),
           title=f"{name}: called parked by stated mode\n"
                 "(car: recall; others: false alarms)")
    _save(fig, path)


def _importance(path: Path, scores: Scores) -> None:
    top = sorted(scores.importance.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_FEATURES]
    fig = Figure(figsize=(6.4, 0.28 * max(len(top), 4) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    if top:
        ax.barh([k for k, _ in top][::-1], [v for _, v in top][::-1], color="tab:blue")
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set(xlabel="drop in average precision when shuffled (held-out folds)")
    else:
        ax.text(0.5, 0.5, "no importances computed", ha="center", va="center")
        ax.set_axis_off()
    ax.set_title(f"{scores.name}: permutation importance (top {TOP_FEATURES})")
    _save(fig, path)
