"""Vectorised validation of raw events: the one place that decides what a valid event is.

Each rule yields a stable reason code (``lat_out_of_range``) and a sentence naming the value.
An event failing several rules gets all their codes, joined by ``;``. Rejected events are not
errors: :mod:`parkloop.raw.log` stores the valid ones and quarantines the rest.

>>> from parkloop.raw.events import EventBatch
>>> from parkloop.raw.schema import FIX
>>> t = EventBatch.of("phone-1", "b1", "api", {"fix": {
...     "seq": [0, 1], "t_ms": [1_700_000_000_000] * 2, "lat": [52.5, 95.0],
...     "lon": [13.4, float("nan")]}}).tables["fix"]
>>> bad, reasons, details = check(FIX, t, received_ms=1_700_000_000_000)
>>> bad.tolist(), reasons
([False, True], ['lat_out_of_range;lon_not_finite'])
>>> details[0]
'lat 95.0 is outside [-90, 90] degrees; lon is not a finite number'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.raw.schema import ACTIVITIES, LINKS, MODES, Kind

GPS_EPOCH_MS = 315_964_800_000
"""1980-01-06T00:00:00Z: no satellite fix can be older."""

DAY_MS = 86_400_000


@dataclass(frozen=True)
class Limits:
    """What the raw layer accepts. Units are in the names; defaults suit phones and GeoLife."""

    max_batch_events: int = 100_000
    """events per batch; a larger batch is quarantined whole (reason ``batch_too_large``)."""
    earliest_ms: int = GPS_EPOCH_MS
    """no event time before this, ms since epoch (default: the GPS epoch)."""
    max_ahead_ms: int = DAY_MS
    """how far an event time may lie after the store received it, ms (clock skew allowance)."""
    max_label_span_ms: int = 7 * DAY_MS
    """longest span a label may cover, ms."""
    max_text_len: int = 128
    """longest free-text field (provider, vehicle, versions), characters."""


DEFAULT_LIMITS = Limits()

Check = tuple[str, np.ndarray, Callable[[int], str]]
"""A rule's outcome: reason code, mask of failing rows, and a sentence for a failing row."""


def check(kind: Kind, table: pa.Table, *, received_ms: int,
          limits: Limits = DEFAULT_LIMITS) -> tuple[np.ndarray, list[str], list[str]]:
    """Validate one kind's events; return the mask of rejected rows and, for each rejected row
    in order, its reason codes and its sentence."""
    checks = list(_checks(kind, table, received_ms, limits))
    bad = np.zeros(table.num_rows, dtype=bool)
    for _, mask, _ in checks:
        bad |= mask
    idx = np.flatnonzero(bad)
    reasons, details = [], []
    for i in idx:
        failed = [(code, say) for code, mask, say in checks if mask[i]]
        reasons.append(";".join(code for code, _ in failed))
        details.append("; ".join(say(int(i)) for _, say in failed))
    return bad, reasons, details


def _checks(kind: Kind, table: pa.Table, received_ms: int, limits: Limits) -> list[Check]:
    out: list[Check] = []
    for f in kind.fields:
        if f.required:
            missing = np.asarray(table.column(f.name).is_null())
            if missing.any():
                out.append((f"{f.name}_missing", missing, _say(f.name, "is missing")))
    out += _time(table, "t_ms", received_ms, limits)
    name = kind.name
    if name == "fix":
        out += _range(table, "lat", -90, 90, "degrees")
        out += _range(table, "lon", -180, 180, "degrees")
        out += _range(table, "accuracy_m", 0, 1e6, "m")
        out += _range(table, "speed_mps", 0, 400, "m/s")
        out += _range(table, "bearing_deg", 0, 360, "degrees")
        out += _range(table, "altitude_m", -11_000, 100_000, "m")
        out += _text(table, "provider", limits)
    elif name == "activity":
        out += _one_of(table, "activity", ACTIVITIES)
        out += _range(table, "confidence", 0, 1, "")
    elif name == "vehicle_link":
        out += _one_of(table, "link", LINKS)
        out += _text(table, "vehicle", limits)
    elif name == "label":
        out += _one_of(table, "mode", MODES)
        out += _time(table, "start_ms", received_ms, limits)
        out += _time(table, "end_ms", received_ms, limits)
        start, end = _ints(table, "start_ms"), _ints(table, "end_ms")
        span = end - start
        out.append(("label_ends_before_start", span < 0,
                    lambda i: f"label ends {-span[i] / 1000:g} s before it starts"))
        out.append(("label_span_too_long", span > limits.max_label_span_ms,
                    lambda i: f"label spans {span[i] / DAY_MS:.1f} days, more than "
                              f"{limits.max_label_span_ms / DAY_MS:g}"))
    elif name == "feedback":
        out += _time(table, "parked_at_ms", received_ms, limits)
        out += _range(table, "lat", -90, 90, "degrees")
        out += _range(table, "lon", -180, 180, "degrees")
        out += _text(table, "model_version", limits)
        out += _text(table, "rules_version", limits)
    return [c for c in out if c[1].any()]


def _say(field: str, text: str) -> Callable[[int], str]:
    return lambda i: f"{field} {text}"


def _floats(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.fill_null(table.column(name), np.nan).to_numpy(), dtype=np.float64)


def _ints(table: pa.Table, name: str) -> np.ndarray:
    return np.asarray(pc.fill_null(table.column(name), 0).to_numpy(), dtype=np.int64)


def _range(table: pa.Table, name: str, lo: float, hi: float, unit: str) -> list[Check]:
    col = table.column(name)
    x = _floats(table, name)
    present = np.asarray(col.is_valid())
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(x)
        outside = finite & ((x < lo) | (x > hi))
    unit = f" {unit}" if unit else ""
    return [
        (f"{name}_not_finite", present & ~finite, _say(name, "is not a finite number")),
        (f"{name}_out_of_range", outside,
         lambda i: f"{name} {float(x[i])!r} is outside [{lo:g}, {hi:g}]{unit}"),
    ]


def _time(table: pa.Table, name: str, received_ms: int, limits: Limits) -> list[Check]:
    t = _ints(table, name)
    latest = received_ms + limits.max_ahead_ms
    return [
        (f"{name}_before_gps_epoch", t < limits.earliest_ms,
         lambda i: f"{name} {_iso(t[i])} is before {_iso(limits.earliest_ms)}"),
        (f"{name}_in_future", t > latest,
         lambda i: f"{name} {_iso(t[i])} is more than {limits.max_ahead_ms / 3.6e6:g} h "
                   f"after the batch was received ({_iso(received_ms)})"),
    ]


def _one_of(table: pa.Table, name: str, allowed: tuple[str, ...]) -> list[Check]:
    col = table.column(name)
    unknown = np.asarray(pc.fill_null(
        pc.invert(pc.is_in(col, value_set=pa.array(allowed))), False))
    values = col.to_pylist() if unknown.any() else []
    return [(f"{name}_unknown", unknown,
             lambda i: f"{name} {values[i]!r} is not one of {', '.join(allowed)}")]


def _text(table: pa.Table, name: str, limits: Limits) -> list[Check]:
    length = np.asarray(pc.fill_null(pc.utf8_length(table.column(name)), 0))
    return [(f"{name}_too_long", length > limits.max_text_len,
             lambda i: f"{name} has {length[i]} characters, more than {limits.max_text_len}")]


def _iso(ms: int) -> str:
    return str(np.datetime64(int(ms), "ms")) + "Z"
