"""Uploads: how a phone batches its events and what goes wrong on the way.

Sensor events (fixes, activity, car link) are gathered into windows of 5-20 minutes of data and
sent when a window closes; labels go in their own batches. The transport misbehaves the way
phones do: some batches are sent twice (same id, same content), some batches repeat the last
fixes of the batch before (the same fix under another batch id), and batches held back while
the phone is offline arrive after later ones.

Batch ids are ``YYYYMMDD-nnnn`` (sensor data) and ``YYYYMMDD-label-nn`` (labels), numbered per
UTC day of their first event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from parkloop.raw.events import EventBatch
from parkloop.simulate.scenarios import Uploads

SENSOR_KINDS = ("fix", "activity", "vehicle_link")
DAY_MS = 86_400_000


@dataclass(frozen=True)
class Sent:
    """The batches of one device in the order they reach the store (duplicates repeated)."""

    batches: list[EventBatch]
    unique: list[EventBatch]
    """each batch once, in the order the phone made them"""
    duplicate_sends: int


def _day(t_ms: int) -> str:
    return str(np.datetime64(int(t_ms), "ms").astype("datetime64[D]")).replace("-", "")


def _batch(device_id: str, batch_id: str, parts: dict[str, pa.Table]) -> EventBatch:
    """A batch whose seq numbers follow time order across kinds."""
    parts = {k: v for k, v in parts.items() if v.num_rows}
    t = np.concatenate([np.asarray(v.column("t_ms")) for v in parts.values()])
    kind = np.concatenate([np.full(v.num_rows, i) for i, v in enumerate(parts.values())])
    seq = np.empty(len(t), np.int64)
    seq[np.lexsort((kind, t))] = np.arange(len(t))
    tables, at = {}, 0
    for name, v in parts.items():
        tables[name] = v.append_column("seq", pa.array(seq[at:at + v.num_rows], pa.int64()))
        at += v.num_rows
    return EventBatch.of(device_id, batch_id, "simulator", tables)


def send(device_id: str, sensors: dict[str, pa.Table], labels: pa.Table, params: Uploads,
         rng: np.random.Generator) -> Sent:
    """Batch a device's events (tables sorted by ``t_ms``) and decide their arrival order."""
    times = np.concatenate([np.asarray(sensors[k].column("t_ms")) for k in SENSOR_KINDS])
    lo, hi = (int(times.min()), int(times.max())) if len(times) else (0, 0)
    n_win = int((hi - lo) / (params.window_s[0] * 1000.0)) + 2
    edges = lo + np.cumsum(rng.uniform(*params.window_s, size=n_win) * 1000.0).astype(np.int64)
    win = {k: np.searchsorted(edges, np.asarray(sensors[k].column("t_ms")), side="right")
           for k in SENSOR_KINDS}
    used = np.unique(np.concatenate(list(win.values())))
    resend = rng.random(len(used)) < params.resend_prob
    n_resent = rng.integers(1, 6, size=len(used))
    made: list[tuple[int, EventBatch]] = []  # (upload time ms, batch)
    per_day: dict[str, int] = {}
    carry = np.zeros(0, np.int64)
    for k, w in enumerate(used):
        rows = {name: np.arange(np.searchsorted(win[name], w, side="left"),
                                np.searchsorted(win[name], w, side="right"))
                for name in SENSOR_KINDS}
        fix_rows = np.concatenate([carry, rows["fix"]])
        carry = rows["fix"][-int(n_resent[k]):] if resend[k] else np.zeros(0, np.int64)
        parts = {name: sensors[name].take(rows[name]) for name in SENSOR_KINDS[1:]}
        parts = {"fix": sensors["fix"].take(fix_rows), **parts}
        first = min(int(v.column("t_ms")[0].as_py()) for v in parts.values() if v.num_rows)
        day = _day(first)
        n = per_day[day] = per_day.get(day, -1) + 1
        made.append((int(edges[w]) if w < len(edges) else hi,
                     _batch(device_id, f"{day}-{n:04d}", parts)))
    arrive = np.array([up for up, _ in made], dtype=np.float64) + rng.uniform(
        0.0, 30_000.0, size=len(made))
    held = rng.random(len(made)) < params.delay_prob
    arrive += held * rng.uniform(*params.delay_s, size=len(made)) * 1000.0
    twice = rng.random(len(made)) < params.duplicate_prob
    again = arrive + rng.uniform(30_000.0, 1_800_000.0, size=len(made))
    queue = [(float(a), i, b) for i, (a, (_, b)) in enumerate(zip(arrive, made, strict=True))]
    queue += [(float(again[i]), int(i), made[i][1]) for i in np.flatnonzero(twice)]
    queue += _label_batches(device_id, labels, edges, len(made), rng)
    queue.sort(key=lambda q: (q[0], q[1]))
    unique = [b for _, b in made] + [b for _, i, b in queue if i >= len(made)]
    return Sent([b for _, _, b in queue], unique, int(twice.sum()))


def _label_batches(device_id: str, labels: pa.Table, edges: np.ndarray, first_index: int,
                   rng: np.random.Generator) -> list[tuple[float, int, EventBatch]]:
    """Labels entered within one upload window go in one batch, sent when it closes."""
    if labels.num_rows == 0:
        return []
    t = np.asarray(labels.column("t_ms"))
    win = np.searchsorted(edges, t, side="right")
    out: list[tuple[float, int, EventBatch]] = []
    per_day: dict[str, int] = {}
    for w in np.unique(win):
        rows = np.flatnonzero(win == w)
        day = _day(int(t[rows[0]]))
        n = per_day[day] = per_day.get(day, -1) + 1
        up = float(edges[w]) if w < len(edges) else float(t[rows[-1]])
        out.append((up + float(rng.uniform(0.0, 30_000.0)), first_index + len(out),
                    _batch(device_id, f"{day}-label-{n:02d}", {"label": labels.take(rows)})))
    return out
