"""The loop's history plot: a valid PNG of the documented size, drawn from real-shaped audit
records (thresholds crossed, publish, rollback, a failure before any monitor, nulls)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.image import imread

from parkloop.loop.plot import DPI, MARGINS_IN, MONITORS, PANEL_IN, WIDTH_IN, plot_history

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
T0 = 1_763_700_000_000  # 2025-11-21 04:40 UTC, epoch ms
STEP = 300_000  # a pass every 5 min
LIMITS = {"drift": (0.25, 0.10, "above"), "accuracy": (0.80, 0.85, "below"),
          "new_labels": (300, 100, "above"), "parked_share": (0.15, 0.08, "above"),
          "confidence": (0.15, 0.08, "above")}


def _monitor(name: str, value: float | None, alarm: bool, fired: bool = False,
             alarm_at: float | None = None) -> dict[str, Any]:
    on, off, bad = LIMITS[name]
    return {"value": value, "n": 400, "alarm": alarm, "fired": fired,
            "threshold": {"alarm": on if alarm_at is None else alarm_at, "clear": off,
                          "min_samples": 50, "bad": bad},
            "detail": {}, **({"note": "below min_samples"} if value is None else {})}


def _record(i: int, decision: str, values: dict[str, float | None],
            alarms: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    monitors = {n: _monitor(n, v, n in alarms, alarm_at=extra.pop(f"{n}_alarm", None))
                for n, v in values.items()}
    return {"at_ms": T0 + i * STEP, "actor": "cli", "spec": "parked@abc",
            "rules_version": "v1@def", "raw_watermark": 100 + 10 * i, "champion": "2",
            "champion_watermark": 100, "monitors": monitors, "fired": list(alarms),
            "alarms": list(alarms), "decision": decision, "reason": "...", "seconds": 2.1,
            **extra}


def _history() -> list[dict[str, Any]]:
    ok = {"drift": 0.05, "accuracy": 0.91, "new_labels": 20, "parked_share": 0.02,
          "confidence": None}
    failed = {"at_ms": T0 + 2 * STEP, "actor": "cli", "decision": "failed",
              "reason": "cannot read the spec", "seconds": 0.1}
    return [
        _record(0, "kept", ok),
        _record(1, "published", ok | {"drift": 0.31, "accuracy": 0.78}, ("drift", "accuracy"),
                retrain={"version": "3", "label_set_hash": "f00d"}),
        failed,
        _record(3, "kept", ok | {"drift": None, "new_labels": 350}, ("new_labels",),
                drift_alarm=0.30),  # an operator raised drift's alarm line
        _record(4, "rolled_back", ok | {"accuracy": 0.70}, ("accuracy",),
                rollback={"rolled_back": True, "reason": "worse on new labels"}),
        _record(5, "kept", ok),
    ]


def _pixels(path: Path) -> np.ndarray:
    assert path.read_bytes()[:8] == PNG_MAGIC
    return imread(path)


def _size(panels: int) -> tuple[int, int]:
    return round((MARGINS_IN + PANEL_IN * panels) * DPI), round(WIDTH_IN * DPI)


def test_history_is_a_png_of_the_documented_size(tmp_path: Path) -> None:
    records = _history()
    before = repr(records)
    out = plot_history(records, tmp_path / "plots" / "history.png")
    assert out == tmp_path / "plots" / "history.png"
    image = _pixels(out)
    assert image.shape[:2] == _size(len(MONITORS)) == (1250, 1000)
    assert image[..., :3].std() > 0.05  # not blank
    assert repr(records) == before  # input never mutated
    # the same passes in any order give the same bytes
    again = plot_history(list(reversed(_history())), tmp_path / "again.png")
    assert again.read_bytes() == out.read_bytes()


def test_a_single_pass_and_monitors_never_measured(tmp_path: Path) -> None:
    only = _record(0, "kept", {"drift": None, "accuracy": None})
    image = _pixels(plot_history([only], tmp_path / "one.png"))
    assert image.shape[:2] == _size(2)
    assert image[..., :3].std() > 0.05


def test_passes_without_any_monitor_still_plot(tmp_path: Path) -> None:
    skipped = {"at_ms": T0, "actor": "cli", "decision": "skipped", "reason": "no champion"}
    failed = {"at_ms": T0 + STEP, "actor": "cli", "decision": "failed", "reason": "boom"}
    image = _pixels(plot_history([skipped, failed], tmp_path / "none.png"))
    assert image.shape[:2] == _size(1)


def test_no_passes_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no loop passes recorded yet"):
        plot_history([], tmp_path / "empty.png")
    assert not (tmp_path / "empty.png").exists()


def test_a_record_without_a_time_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"records \[1\]"):
        plot_history([_record(0, "kept", {}), {"decision": "kept"}], tmp_path / "x.png")
