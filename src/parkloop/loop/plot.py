"""The loop's history as one picture: each monitor's value against its thresholds, pass by
pass, with the decisions (publish, rollback, failure) drawn across every panel.

It reads the records of :func:`parkloop.loop.audit.history`. Like
:mod:`parkloop.interpret.report` it draws on :class:`matplotlib.figure.Figure` directly
(never pyplot), so it needs no display, selects no backend and touches no global state.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

MONITORS = ("drift", "accuracy", "new_labels", "parked_share", "confidence")
"""the panels, top to bottom (see :data:`parkloop.loop.monitors.HIGH_IS_BAD`)"""
WIDTH_IN, PANEL_IN, MARGINS_IN, DPI = 10.0, 2.25, 1.25, 100
"""figure width, height per panel and of the title, legend and time axis (inches), and dots
per inch: an n-panel PNG is 1000 x (125 + 225 n) pixels (quarter inches keep it exact)."""
_DECISIONS: dict[str, dict[str, Any]] = {
    "published": {"color": "tab:green", "linestyle": "-"},
    "rolled_back": {"color": "tab:orange", "linestyle": "-"},
    "failed": {"color": "black", "linestyle": ":"}}
_ALARM: dict[str, Any] = {"color": "tab:red", "linestyle": "--", "linewidth": 1.0}
_CLEAR: dict[str, Any] = {"color": "grey", "linestyle": ":", "linewidth": 1.0}
_PNG_META = {"Software": None}  # no matplotlib version in the file: same input, same bytes


def plot_history(records: list[dict[str, Any]], out: Path) -> Path:
    """Draw the loop's passes (audit records, any order) as a PNG at ``out``; returns ``out``.

    One panel per monitor that was ever measured: its value (gaps where not measured),
    passes in alarm in red, and the alarm (dashed) and clear (dotted) thresholds as each
    pass recorded them. Vertical lines mark publishes (labelled with the new version),
    rollbacks and failures."""
    if not records:
        raise ValueError("no loop passes recorded yet")
    bad = [i for i, r in enumerate(records) if not isinstance(r.get("at_ms"), int)]
    if bad:
        raise ValueError(f"records {bad} have no integer `at_ms` (epoch milliseconds)")
    passes = sorted(records, key=lambda r: int(r["at_ms"]))
    when = [datetime.fromtimestamp(r["at_ms"] / 1000, tz=UTC) for r in passes]
    pad = max((when[-1] - when[0]) * 0.03, timedelta(minutes=5))
    # matplotlib's date numbers (days since its epoch): plain floats for every call below
    days = date2num([*when, when[0] - pad, when[-1] + pad])  # type: ignore[no-untyped-call]
    x, span = [float(d) for d in days[:-2]], (float(days[-2]), float(days[-1]))
    names: list[str | None] = [
        n for n in MONITORS if any(n in (r.get("monitors") or {}) for r in passes)] or [None]

    # fixed margins, not constrained layout: half the drawing time, and the same for any data
    height = MARGINS_IN + PANEL_IN * len(names)
    fig = Figure(figsize=(WIDTH_IN, height))
    axes = fig.subplots(len(names), 1, sharex=True, squeeze=False, gridspec_kw={
        "left": 0.8 / WIDTH_IN, "right": 1 - 0.35 / WIDTH_IN, "top": 1 - 0.8 / height,
        "bottom": 0.45 / height, "hspace": 0.3})[:, 0]
    for ax, name in zip(axes, names, strict=True):
        _panel(ax, name, passes, x, span)
        for r, t in zip(passes, x, strict=True):
            if (style := _DECISIONS.get(r.get("decision", ""))) is not None:
                ax.axvline(t, linewidth=1.2, alpha=0.8, **style)
    version_axis = axes[0].get_xaxis_transform()  # x in data, y in axes fraction
    for r, t in zip(passes, x, strict=True):
        version = (r.get("retrain") or {}).get("version")
        if r.get("decision") == "published" and version is not None:
            axes[0].text(t, 1.0, f" v{version}", transform=version_axis, va="bottom",
                         ha="left", fontsize=8, color=_DECISIONS["published"]["color"])
    axes[-1].set_xlim(*span)
    locator = AutoDateLocator(tz=UTC)  # type: ignore[no-untyped-call]
    axes[-1].xaxis.set_major_locator(locator)
    axes[-1].xaxis.set_major_formatter(
        ConciseDateFormatter(locator, tz=UTC))  # type: ignore[no-untyped-call]
    axes[-1].set_xlabel("pass time (UTC)")

    seen = {r.get("decision") for r in passes}
    handles = [Line2D([], [], color="tab:blue", marker="o", markersize=4, label="value"),
               Line2D([], [], color="tab:red", marker="o", linestyle="", label="in alarm"),
               Line2D([], [], label="alarm threshold", **_ALARM),
               Line2D([], [], label="clear threshold", **_CLEAR),
               *(Line2D([], [], label=d.replace("_", " "), **s)
                 for d, s in _DECISIONS.items() if d in seen)]
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 1 - 0.3 / height),
               ncols=len(handles), fontsize=8, frameon=False)
    fmt = "%Y-%m-%d %H:%M"
    fig.suptitle(f"Loop history: {len(passes)} pass{'es' if len(passes) > 1 else ''}, "
                 + (f"{when[0]:{fmt}} to {when[-1]:{fmt}} UTC" if len(passes) > 1
                    else f"{when[0]:{fmt}} UTC"), y=1 - 0.08 / height, va="top", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=DPI, format="png", metadata=_PNG_META)
    return out


def _panel(ax: Axes, name: str | None, passes: list[dict[str, Any]], x: list[float],
           span: tuple[float, float]) -> None:
    """One monitor's values and thresholds at the passes' times ``x`` (matplotlib days);
    ``name`` None for the empty panel shown when no pass measured any monitor."""
    states = [(r.get("monitors") or {}).get(name or "") for r in passes]
    values = [math.nan if s is None or s.get("value") is None else float(s["value"])
              for s in states]
    ax.plot(x, values, color="tab:blue", marker="o", markersize=4, linewidth=1.2)
    alarmed = [i for i, s in enumerate(states)
               if s is not None and s.get("alarm") and not math.isnan(values[i])]
    ax.plot([x[i] for i in alarmed], [values[i] for i in alarmed], color="tab:red",
            marker="o", linestyle="", zorder=3)
    limits = [(t, s["threshold"]) for t, s in zip(x, states, strict=True)
              if s is not None and isinstance(s.get("threshold"), dict)]
    for key, style in (("alarm", _ALARM), ("clear", _CLEAR)):
        ys = [float(th[key]) if th.get(key) is not None else math.nan for _, th in limits]
        if ys:  # steps from the panel's left edge to its right one, changing where a pass did
            xs = [span[0], *(t for t, _ in limits[1:]), span[1]]
            ax.step(xs, [*ys, ys[-1]], where="post", **style)
    if all(math.isnan(v) for v in values):
        ax.text(0.5, 0.5, "not measured" if name else "no monitor measured in these passes",
                transform=ax.transAxes, ha="center", va="center", color="grey")
        if not limits:
            ax.set_yticks([])  # no scale to show
    bad_side = limits[-1][1].get("bad") if limits else None
    ax.set_ylabel(name or "monitors", fontsize=9)
    if bad_side:
        ax.set_title(f"{name}: bad {bad_side} the alarm line", loc="left", fontsize=8)
    ax.grid(True, alpha=0.3)
