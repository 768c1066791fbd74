"""What the facts engine reads from the raw layer, and in which order.

Every engine and the console read a device's raw events through here, so the order they see
them in is written once:

- fixes by arrival (``batch_no``, ``seq``): arrival order is raw data, and
  :mod:`~parkloop.facts.order` decides from it which fixes are late;
- car-link changes and activity guesses by time (then value, so equal inputs give equal
  arrays); an activity counts as on foot if it is one of :data:`ON_FOOT`;
- labels and feedback in any order: :meth:`Statements.from_events` puts them in their
  canonical order (:meth:`Statements.of`).

Three readers share the columns-to-facts-inputs code (:func:`device_inputs`): one device from
the store (:func:`read_device`; the batch build and the console), the new batches of all
devices (:func:`read_batches`; the live pipeline), and one device's rows of the Parquet export
as Spark hands them to a worker (:func:`arrow_inputs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pyarrow as pa

from parkloop.facts.features import ON_FOOT, Signals
from parkloop.facts.pipeline import Fixes
from parkloop.facts.said import Statements
from parkloop.raw.stats import raw_watermark

_T = TypeVar("_T")

if TYPE_CHECKING:
    import duckdb

    from parkloop.store import Store

KIND_FIX, KIND_LINK, KIND_ACTIVITY, KIND_LABEL, KIND_FEEDBACK = 0, 1, 2, 3, 4
"""the ``kind`` codes of the raw Parquet export (:func:`parkloop.facts.spark.export_raw`)"""

Columns = Mapping[str, Any]
"""one kind's columns by name (NumPy arrays, masked where a column has NULLs)"""
Read = tuple[dict[str, Fixes], dict[str, Signals]]
"""what :func:`read_batches` gives: fixes and signals by device"""


@dataclass(frozen=True)
class Source:
    """One kind of raw event as the facts engine reads it."""

    table: str
    columns: tuple[str, ...]
    order: tuple[str, ...]
    """within one device; empty: any order"""
    kind: int
    """its code in the Parquet export"""
    exported: tuple[str, ...] | None = None
    """the columns' names in the Parquet export, where they differ"""


FIX = Source("raw_fix", ("t_ms", "lat", "lon", "accuracy_m", "altitude_m"),
             ("batch_no", "seq"), KIND_FIX)
LINK = Source("raw_vehicle_link", ("t_ms", "connected"), ("t_ms", "connected"), KIND_LINK)
ACTIVITY = Source("raw_activity", ("t_ms", "activity"), ("t_ms", "activity"), KIND_ACTIVITY)
LABEL = Source("raw_label", ("t_ms", "end_ms", "mode"), (), KIND_LABEL)
FEEDBACK = Source("raw_feedback", ("t_ms", "parked_at_ms", "lat", "lon", "parked"), (),
                  KIND_FEEDBACK, exported=("t_ms", "end_ms", "lat", "lon", "parked"))
SOURCES = (FIX, LINK, ACTIVITY, LABEL, FEEDBACK)


def device_inputs(fix: Columns, link: Columns, activity: Columns, label: Columns,
                  feedback: Columns) -> tuple[Fixes, Signals]:
    """A device's fixes and signals from its columns of each :data:`SOURCES` kind, each kind
    in its order."""
    return fixes_of(fix), signals_of(link, activity, label, feedback)


def fixes_of(f: Columns) -> Fixes:
    """Fixes from their columns, in arrival order."""
    return Fixes(np.asarray(f["t_ms"], np.int64), np.asarray(f["lat"], np.float64),
                 np.asarray(f["lon"], np.float64), nullable_floats(f["accuracy_m"]),
                 nullable_floats(f["altitude_m"]), np.arange(len(f["t_ms"]), dtype=np.int64))


def signals_of(link: Columns, activity: Columns, label: Columns, feedback: Columns) -> Signals:
    """Phone signals and statements from their columns, signals in time order."""
    return Signals(np.asarray(link["t_ms"], np.int64), np.asarray(link["connected"], bool),
                   np.asarray(activity["t_ms"], np.int64),
                   np.isin(np.asarray(activity["activity"], object), ON_FOOT),
                   Statements.from_events(
                       label["t_ms"], label["end_ms"], label["mode"], feedback["t_ms"],
                       feedback["parked_at_ms"], feedback["lat"], feedback["lon"],
                       feedback["parked"]))


def nullable_floats(a: object) -> np.ndarray:
    """A numeric column with NULLs as NaN."""
    return np.ma.filled(np.ma.asarray(a, dtype=np.float64), np.nan)


def read_device(store: Store | None, device_id: str,
                con: duckdb.DuckDBPyConnection | None = None, *,
                upto_batch: int | None = None) -> tuple[Fixes, Signals]:
    """One device's raw fixes, phone signals and statements (``con``: a cursor of the store's
    connection, for reading from another thread, or in place of ``store``), from every batch
    or those up to ``upto_batch``."""
    if con is None:
        assert store is not None, "read_device needs a store or a cursor"
        con = store.con
    args = [device_id, np.iinfo(np.int64).max if upto_batch is None else upto_batch]
    fix, link, activity, label, feedback = (
        con.execute(f"SELECT {', '.join(s.columns)} FROM {s.table}"
                    f" WHERE device_id = ? AND batch_no <= ?{_order_by(s.order)}",
                    args).fetchnumpy() for s in SOURCES)
    return device_inputs(fix, link, activity, label, feedback)


def read_batches(con: duckdb.DuckDBPyConnection, lo: int, hi: int, *, devices: str = "TRUE",
                 signals: bool = True) -> Read:
    """Fixes and signals (with statements) of batches ``lo < batch_no <= hi``, by device, in
    the order :func:`read_device` gives them; a device without any gets no entry.
    ``devices``: a DuckDB predicate on ``device_id`` that picks the devices to read (a pipeline
    worker's shards, say); ``signals=False``: fixes only (the caller knows these batches hold
    nothing else; four queries fewer)."""
    fix, link, activity, label, feedback = (
        con.execute(f"SELECT device_id, {', '.join(s.columns)} FROM {s.table}"
                    f" WHERE batch_no > ? AND batch_no <= ? AND ({devices})"
                    f"{_order_by(('device_id', *s.order))}",
                    [lo, hi]).fetchnumpy() if s is FIX or signals else
        {"device_id": np.zeros(0, object)} | {c: np.zeros(0) for c in s.columns}
        for s in SOURCES)
    fixes = {device: fixes_of(_rows(fix, sl)) for device, sl in _groups(fix["device_id"])}
    parts = [dict(_groups(c["device_id"])) for c in (link, activity, label, feedback)]
    none = slice(0, 0)
    by_device = {}
    for device in set[str]().union(*parts):
        link_d, act_d, label_d, said_d = (_rows(c, by.get(device, none)) for c, by in zip(
            (link, activity, label, feedback), parts, strict=True))
        by_device[device] = signals_of(link_d, act_d, label_d, said_d)
    return fixes, by_device


def merge_reads(earlier: Read, later: Read) -> Read:
    """Two :func:`read_batches` of consecutive ranges as one read of both ranges gives them:
    fixes in arrival order, signals in time order, statements in canonical order."""
    return (_by_device(earlier[0], later[0], _then_fixes),
            _by_device(earlier[1], later[1], _then_signals))


def _by_device(earlier: dict[str, _T], later: dict[str, _T], then: Callable[[_T, _T], _T]
               ) -> dict[str, _T]:
    """Each device's rows of ``earlier`` and ``later`` as one (``then`` joins a device's)."""
    out = dict(earlier)
    for device, rows in later.items():
        first = out.get(device)
        out[device] = rows if first is None else then(first, rows)
    return out


def _then_fixes(a: Fixes, b: Fixes) -> Fixes:
    """Fixes ``b`` arrived after ``a``: in arrival order."""
    t, lat, lon, acc, alt = (np.concatenate([x, y]) for x, y in zip(
        (a.t_ms, a.lat, a.lon, a.accuracy_m, a.altitude_m),
        (b.t_ms, b.lat, b.lon, b.accuracy_m, b.altitude_m), strict=True))
    return Fixes(t, lat, lon, acc, alt, np.arange(len(t), dtype=np.int64))


def _then_signals(a: Signals, b: Signals) -> Signals:
    """Signals ``b`` arrived after ``a``: in time order, statements in canonical order."""
    link_ms, link_on = _by_time(a.link_ms, a.link_connected, b.link_ms, b.link_connected)
    act_ms, act_foot = _by_time(a.activity_ms, a.activity_on_foot, b.activity_ms,
                                b.activity_on_foot)
    return Signals(link_ms, link_on, act_ms, act_foot, a.statements.extend(b.statements))


def _by_time(t1: np.ndarray, v1: np.ndarray, t2: np.ndarray, v2: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray]:
    t, v = np.concatenate([t1, t2]), np.concatenate([v1, v2])
    order = np.lexsort((v, t))
    return t[order], v[order]


def arrow_inputs(events: pa.Table) -> tuple[Fixes, Signals]:
    """A device's fixes and signals from its rows of the Parquet export (a ``kind`` column
    and the union of every kind's columns), as :func:`read_device` gives them."""
    kind = events.column("kind").to_numpy()

    def columns(s: Source) -> dict[str, np.ndarray]:
        part = events.filter(pa.array(kind == s.kind))
        if s.order:
            part = part.sort_by([(c, "ascending") for c in s.order])
        return {name: _numpy(part.column(exported)) for name, exported in zip(
            s.columns, s.exported or s.columns, strict=True)}

    fix, link, activity, label, feedback = (columns(s) for s in SOURCES)
    return device_inputs(fix, link, activity, label, feedback)


def _order_by(columns: tuple[str, ...]) -> str:
    return f" ORDER BY {', '.join(columns)}" if columns else ""


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    """An Arrow column as NumPy, NULL floats as NaN."""
    if pa.types.is_floating(column.type):
        column = column.fill_null(np.nan)
    return np.asarray(column.to_numpy(zero_copy_only=False))


def _rows(columns: Columns, sl: slice) -> dict[str, Any]:
    return {name: a[sl] for name, a in columns.items()}


def _groups(devices: Any) -> list[tuple[str, slice]]:
    """(device, slice) runs of a column sorted by device."""
    d = np.asarray(devices, object)
    if not len(d):
        return []
    cut = np.flatnonzero(d[1:] != d[:-1]) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(d)]])
    return [(str(d[s]), slice(int(s), int(e))) for s, e in zip(starts, ends, strict=True)]


__all__ = [
    "ACTIVITY",
    "FEEDBACK",
    "FIX",
    "KIND_ACTIVITY",
    "KIND_FEEDBACK",
    "KIND_FIX",
    "KIND_LABEL",
    "KIND_LINK",
    "LABEL",
    "LINK",
    "SOURCES",
    "Read",
    "Source",
    "arrow_inputs",
    "device_inputs",
    "fixes_of",
    "merge_reads",
    "nullable_floats",
    "raw_watermark",
    "read_batches",
    "read_device",
    "signals_of",
]
