"""The live pipeline: raw events as they are stored -> incremental facts -> the champion's
judgements -> every device's car answer, held in memory for the API.

:class:`Live` tails the raw log by batch number through :mod:`parkloop.facts.inputs`, so it
reads exactly the rows ``parkloop facts build`` reads, in the same order, and feeds each device's
:class:`~parkloop.facts.incremental.DeviceStream`. A leg end is judged once its decision time
(``decided_ms``) has passed in the device's own data; its judgement is the batch's: at any
moment, the live leg ends equal what a batch build of the raw events stored so far gives for
the leg ends decided by then, and the answers come from the same
:func:`~parkloop.interpret.parking.car_answer`. Nothing here is written to the store: a
restart replays the raw log (:meth:`Live.catch_up` from batch 0) and arrives at the same state.

A server runs one :class:`Live` per pipeline worker (:mod:`parkloop.serve.worker`), over the
devices of its shards, fed by :meth:`Live.take`; one thread calls it. :meth:`Live.catch_up`
reads the store itself (tests, tools). Views are replaced whole, never edited in place.
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.facts.incremental import DeviceStream
from parkloop.facts.inputs import raw_watermark, read_batches
from parkloop.facts.tables import SCHEMAS
from parkloop.interpret.model import one_thread
from parkloop.interpret.parking import CarAnswer, car_answer

if TYPE_CHECKING:
    import duckdb

    from parkloop.facts.features import Signals
    from parkloop.facts.pipeline import Fixes
    from parkloop.facts.rules import RulesVersion
    from parkloop.interpret.model import ParkedModel

KEEP_ROWS = 500
"""final rows kept per device and table (for the facts API and re-judging on a model swap)"""

FACT_TABLES = ("facts_stop", "facts_trip", "facts_leg", "facts_leg_end")
_DRIVE_COLUMNS = ("started_ms", "start_lat", "start_lon")


@dataclass(frozen=True)
class ServedModel:
    """The published model as served: its registry version and the loaded model."""

    version: str
    model: ParkedModel


@dataclass(frozen=True)
class View:
    """One device's facts after its latest push: final rows (the newest :data:`KEEP_ROWS`)
    and the still open ones. Replaced whole on every push."""

    final: dict[str, pa.Table]
    provisional: dict[str, pa.Table]
    places: pa.Table
    newest_ms: int


@dataclass
class _Device:
    stream: DeviceStream
    view: View
    p_final: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """p(parked) of ``view.final['facts_leg_end']`` under the current champion"""
    answer: CarAnswer | None = None
    known_since_ms: int | None = None


@dataclass(frozen=True)
class CycleReport:
    """What one :meth:`Live.catch_up` did."""

    upto: int
    """the raw watermark after it"""
    fixes: int
    devices: int
    facts: dict[str, int]
    judged: int
    changed: tuple[str, ...]
    """the devices whose answer changed"""
    seconds: float


class Live:
    """Every device's live facts and answer under one rules version and champion."""

    def __init__(self, rules: RulesVersion, champion: ServedModel | None) -> None:
        if champion is not None and champion.model.rules_version != rules.identity:
            raise ValueError(f"model {champion.version} reads {champion.model.rules_version}, "
                             f"not {rules.identity}")
        self.rules = rules
        self.champion = champion
        self.watermark = 0
        """the last raw batch number taken in"""
        self.answers: dict[str, bytes] = {}
        """device -> its car answer as JSON bytes (what ``GET .../car`` returns)"""
        self._devices: dict[str, _Device] = {}
        self._open_ends: dict[str, pa.Table] = {}
        """device -> its open leg ends decided by now, and their p(parked)"""
        self._open_p: dict[str, np.ndarray] = {}

    # --- reading (any thread) -------------------------------------------------------------

    def devices(self) -> list[str]:
        return sorted(self._devices)

    def view(self, device_id: str) -> View | None:
        dev = self._devices.get(device_id)
        return None if dev is None else dev.view

    def judged(self, device_id: str) -> list[dict[str, Any]]:
        """The device's judged leg ends, oldest first: where and when each vehicle leg ended,
        its p(parked) and call under the current champion, and whether it is final."""
        dev = self._devices.get(device_id)
        champion = self.champion
        if dev is None or champion is None:
            return []
        final = dev.view.final["facts_leg_end"]
        open_ends = self._open_ends.get(device_id, _NO_ENDS)
        p = np.concatenate([dev.p_final, self._open_p.get(device_id, np.zeros(0))])
        cols = ("ended_ms", "lat", "lon", "decided_ms", "leg_started_ms")
        rows = [*final.select(list(cols)).to_pylist(), *open_ends.select(list(cols)).to_pylist()]
        if len(rows) != len(p):  # mid-switch to a new champion: ask again
            return []
        called = champion.model.call(pa.concat_tables([final, open_ends]), p)
        for i, row in enumerate(rows):
            row.update(p_parked=float(p[i]), parked=bool(called[i]),
                       final=i < final.num_rows, model_version=champion.version)
        return rows

    def urgent(self, device_id: str, fixes: Fixes | None, signals: Signals | None) -> bool:
        """Whether these new rows of the device may change its answer at once: the device is
        new, they carry a statement, or their fixes reach the decision time of a leg end
        still waiting for it. Other rows can wait (and be merged with later ones): they
        only extend the device's open tail."""
        dev = self._devices.get(device_id)
        if dev is None or (signals is not None and len(signals.statements)):
            return True
        if fixes is None or not len(fixes):
            return False
        decided = np.asarray(dev.view.provisional["facts_leg_end"].column("decided_ms"))
        waiting = decided[decided > dev.view.newest_ms]
        return bool(len(waiting)) and int(fixes.t_ms.max()) >= int(waiting.min())

    # --- taking in new rows (one thread) ------------------------------------------------

    def catch_up(self, con: duckdb.DuckDBPyConnection, *, upto: int | None = None,
                 now_ms: int | None = None, devices: str = "TRUE") -> CycleReport:
        """Take in every raw batch stored after :attr:`watermark` (up to ``upto``) of the
        ``devices`` (a DuckDB predicate on ``device_id``), and update the facts, judgements
        and answers of the devices they touch."""
        start = time.perf_counter()
        hi = raw_watermark(con) if upto is None else upto
        if hi <= self.watermark:
            return CycleReport(self.watermark, 0, 0, {}, 0, (), time.perf_counter() - start)
        fixes, signals = read_batches(con, self.watermark, hi, devices=devices)
        report = self.take(fixes, signals, hi, now_ms=now_ms)
        return dataclasses.replace(report, seconds=time.perf_counter() - start)

    def take(self, fixes: dict[str, Fixes], signals: dict[str, Signals], upto: int, *,
             now_ms: int | None = None) -> CycleReport:
        """Take in the raw rows of the batches after :attr:`watermark` up to ``upto``, as
        :func:`~parkloop.facts.inputs.read_batches` gives them."""
        start = time.perf_counter()
        touched = sorted(set(fixes) | set(signals))
        facts: Counter[str] = Counter()
        updates: dict[str, tuple[pa.Table, pa.Table]] = {}  # device -> (new final, open ends)
        for device in touched:
            dev = self._devices.get(device)
            if dev is None:
                dev = self._devices[device] = _Device(
                    DeviceStream(device, self.rules), _empty_view())
            f = fixes.get(device)
            t, lat, lon, acc, alt = (f.t_ms, f.lat, f.lon, f.accuracy_m, f.altitude_m) \
                if f is not None else (np.zeros(0, np.int64),) + (np.zeros(0),) * 4
            up = dev.stream.push(t, lat, lon, acc, alt, signals=signals.get(device))
            newest = int(max(dev.view.newest_ms, int(t.max()) if len(t) else dev.view.newest_ms))
            final = {name: _keep(dev.view.final[name], up.final[name]) for name in FACT_TABLES}
            for name in FACT_TABLES:
                facts[name] += up.final[name].num_rows
            open_ends = up.provisional["facts_leg_end"]
            open_ends = open_ends.filter(pc.less_equal(open_ends.column("decided_ms"), newest))
            dev.view = View(final, {n: up.provisional[n] for n in FACT_TABLES},
                            up.provisional["facts_place"], newest)
            updates[device] = (up.final["facts_leg_end"], open_ends)
        judged = self._judge(updates)
        changed = self._answer(touched, now_ms)
        self.watermark = max(self.watermark, upto)
        return CycleReport(self.watermark, sum(len(f) for f in fixes.values()),
                           len(touched), dict(facts), judged, tuple(changed),
                           time.perf_counter() - start)

    def use(self, champion: ServedModel, *, now_ms: int | None = None) -> None:
        """Judge every kept leg end with ``champion`` (of the same rules version) and switch
        to it: the new answers are made beside the old ones, then replace them in one
        assignment."""
        if champion.model.rules_version != self.rules.identity:
            raise ValueError("a champion of another rules version needs a new Live")
        devices = sorted(self._devices)
        finals = [self._devices[d].view.final["facts_leg_end"] for d in devices]
        opens = [self._open_ends.get(d, _NO_ENDS) for d in devices]
        p = _predict(champion.model, finals + opens)
        cuts = np.cumsum([0] + [t.num_rows for t in finals + opens])
        p_final = {d: p[cuts[i]:cuts[i + 1]] for i, d in enumerate(devices)}
        p_open = {d: p[cuts[len(devices) + i]:cuts[len(devices) + i + 1]]
                  for i, d in enumerate(devices)}
        answers = dict(self.answers)
        made = {d: self._answer_of(d, champion, p_final[d], p_open[d]) for d in devices}
        now = int(time.time() * 1000) if now_ms is None else now_ms
        since = {d: self._since(self._devices[d], a, now) for d, a in made.items()}
        for d, a in made.items():
            answers[d] = answer_json(a, since[d])
        # the switch: from here on every reader sees the new champion's answers
        self.answers = answers
        self.champion = champion
        self._open_p = p_open
        for d in devices:
            dev = self._devices[d]
            dev.p_final, dev.answer, dev.known_since_ms = p_final[d], made[d], since[d]

    # --- internals ------------------------------------------------------------------------

    def _judge(self, updates: dict[str, tuple[pa.Table, pa.Table]]) -> int:
        """p(parked) for the new final leg ends (kept) and the decided open ones (judged
        afresh each time: later fixes may still change them)."""
        if self.champion is None:
            return 0
        devices = list(updates)
        parts = [t for d in devices for t in updates[d]]
        p = _predict(self.champion.model, parts)
        at = 0
        for d in devices:
            new_final, open_ends = updates[d]
            dev = self._devices[d]
            p_new = p[at:at + new_final.num_rows]
            at += new_final.num_rows
            kept = dev.view.final["facts_leg_end"].num_rows  # the newest KEEP_ROWS
            dev.p_final = np.concatenate([dev.p_final, p_new])[-kept:] if kept else np.zeros(0)
            self._open_p[d] = p[at:at + open_ends.num_rows]
            self._open_ends[d] = open_ends
            at += open_ends.num_rows
        return len(p)

    def _answer(self, devices: list[str], now_ms: int | None) -> list[str]:
        """Rebuild the answers of ``devices``; returns those that changed."""
        now = int(time.time() * 1000) if now_ms is None else now_ms
        changed = []
        for d in devices:
            dev = self._devices[d]
            answer = self._answer_of(d, self.champion, dev.p_final,
                                     self._open_p.get(d, np.zeros(0)))
            if answer != dev.answer:
                dev.known_since_ms = self._since(dev, answer, now)
                dev.answer = answer
                self.answers[d] = answer_json(answer, dev.known_since_ms)
                changed.append(d)
        return changed

    def _answer_of(self, device: str, champion: ServedModel | None, p_final: np.ndarray,
                   p_open: np.ndarray) -> CarAnswer:
        if champion is None:
            return CarAnswer(device, "unknown", None, None, None, None, None,
                             self.rules.identity, "no model is published yet")
        ends, drives = self._inputs(device, np.concatenate([p_final, p_open]),
                                    champion.model)
        return car_answer(device, ends, drives, champion.version, self.rules.identity,
                          self._devices[device].stream.statements)

    @staticmethod
    def _since(dev: _Device, answer: CarAnswer, now: int) -> int | None:
        """When the answer's fact (parked there, or driven away) first became known."""
        old = dev.answer
        if old is not None and (old.status, old.parked_at_ms, old.lat, old.lon) == (
                answer.status, answer.parked_at_ms, answer.lat, answer.lon):
            return dev.known_since_ms
        return now

    def _inputs(self, device: str, p: np.ndarray, model: ParkedModel
                ) -> tuple[pa.Table, pa.Table]:
        """A device's judged leg ends (final, then open; ``p`` in that order) and its
        vehicle legs."""
        dev = self._devices[device]
        final = dev.view.final["facts_leg_end"]
        open_ends = self._open_ends.get(device, _NO_ENDS)
        why = model.reasons(pa.concat_tables([final, open_ends]), p)
        ends = pa.table({
            "ended_ms": _cat(final, open_ends, "ended_ms", pa.int64()),
            "lat": _cat(final, open_ends, "lat"), "lon": _cat(final, open_ends, "lon"),
            "p_parked": pa.array(p, pa.float64()), "parked": pa.array(why == 0),
            "why": pa.array(why, pa.int64())})
        legs = [dev.view.final["facts_leg"], dev.view.provisional["facts_leg"]]
        drives = pa.concat_tables([t.filter(pc.equal(t.column("mode"), "vehicle"))
                                   .select(list(_DRIVE_COLUMNS)) for t in legs])
        return ends, drives


_NO_ENDS = SCHEMAS["facts_leg_end"].empty_table()


def _cat(a: pa.Table, b: pa.Table, column: str, type_: pa.DataType | None = None
         ) -> pa.Array:
    chunks = [*a.column(column).chunks, *b.column(column).chunks]
    return pa.concat_arrays(chunks) if chunks else pa.array([], type_ or pa.float64())


def _predict(model: ParkedModel, tables: list[pa.Table]) -> np.ndarray:
    rows = [t for t in tables if t.num_rows]
    if not rows:
        return np.zeros(0)
    with one_thread():
        return model.predict(pa.concat_tables(rows))


def _keep(old: pa.Table, new: pa.Table) -> pa.Table:
    if not new.num_rows:
        return old
    both = pa.concat_tables([old, new]) if old.num_rows else new
    return both.slice(max(0, both.num_rows - KEEP_ROWS)).combine_chunks()


def _empty_view() -> View:
    empty = {n: SCHEMAS[n].empty_table() for n in FACT_TABLES}
    return View(empty, empty, SCHEMAS["facts_place"].empty_table(), np.iinfo(np.int64).min)


def _iso(ms: int | None) -> str | None:
    if ms is None:
        return None
    return str(np.datetime64(int(ms), "ms")) + "Z"


def answer_json(answer: CarAnswer, known_since_ms: int | None) -> bytes:
    """The car answer as the API returns it."""
    return orjson.dumps({
        "device_id": answer.device_id, "status": answer.status, "parked": answer.parked,
        "lat": answer.lat, "lon": answer.lon, "parked_at": _iso(answer.parked_at_ms),
        "p_parked": answer.p_parked, "known_since": _iso(known_since_ms),
        "reason": answer.reason, "model_version": answer.model_version,
        "rules_version": answer.rules_version})


__all__ = ["CycleReport", "Live", "ServedModel", "View", "answer_json"]
