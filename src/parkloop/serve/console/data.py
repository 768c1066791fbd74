"""What the operator console shows, read for one request at a time: a device's raw fixes,
cleaned track and facts under any rules version, a leg end's features and lineage, two rules
versions compared, the registry, the loop and the server's counters.

A device's facts are computed from its raw events when asked (:func:`device_facts` on the
device's rows, the step every build runs), so any rules version can be shown, built or not, and
what is shown is what a build would store. They are cached per (device, rules version, newest
raw batch of the device). Nothing here writes to the store.

The routes are in :mod:`parkloop.serve.console.routes`; the page is ``serve/web/``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
import pyarrow as pa

from parkloop.errors import ApiError
from parkloop.facts.features import FEATURES
from parkloop.facts.geo import haversine_m
from parkloop.facts.inputs import read_device
from parkloop.facts.pipeline import Fixes, device_facts
from parkloop.interpret.labels import MATCH_S
from parkloop.interpret.model import one_thread

if TYPE_CHECKING:
    import duckdb

    from parkloop.facts.rules import RulesVersion
    from parkloop.serve.live import ServedModel
    from parkloop.serve.pipeline import Pipeline

DEFAULT_POINTS = 4000
"""most points per drawn line (raw fixes, track) unless the request asks otherwise"""
CACHED_DEVICES = 16
"""(device, rules version) results kept; one is a few MB for a month of fixes"""
PAIR_LEG_ENDS_MS = 5 * 60_000
"""two versions' leg ends this close in time are the same leg end, moved or not"""
SAME_M = 1.0
"""two versions' stops or leg ends at the same times are the same when this close, m"""

STOP_COLUMNS = ("started_ms", "finished_ms", "lat", "lon", "n_fixes", "place_no")
LEG_COLUMNS = ("started_ms", "finished_ms", "mode", "start_lat", "start_lon", "end_lat",
               "end_lon", "distance_m", "n_fixes")
LEG_END_COLUMNS = ("ended_ms", "lat", "lon", "leg_started_ms", "decided_ms", "place_no")
PLACE_COLUMNS = ("place_no", "lat", "lon", "n_visits", "dwell_total_s", "first_ms", "last_ms")


@dataclass(frozen=True)
class DeviceData:
    """One device under one rules version: its raw fixes (time order), the fixes the rules
    kept, and its fact tables."""

    rules: RulesVersion
    raw: Fixes
    clean: Fixes
    tables: dict[str, pa.Table]
    judged: dict[str, np.ndarray] = field(default_factory=dict)
    """p(parked) of every leg end by model version (filled as asked)"""


class Facts:
    """Devices' facts computed on demand, with a small LRU cache."""

    def __init__(self) -> None:
        self._cache: OrderedDict[tuple[str, str, int], DeviceData] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, con: duckdb.DuckDBPyConnection, device_id: str, rules: RulesVersion
           ) -> DeviceData:
        [newest] = con.execute("SELECT max(batch_no) FROM raw_batch WHERE device_id = ?",
                               [device_id]).fetchall()
        if newest[0] is None:
            raise ApiError(404, "not_found", f"no raw events from device {device_id!r}")
        key = (device_id, rules.identity, int(newest[0]))
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        fixes, signals = read_device(None, device_id, con)
        made_of = device_facts(device_id, fixes, signals, rules, keep_clean=True)
        assert made_of.clean is not None
        order = np.argsort(fixes.t_ms, kind="stable")
        made = DeviceData(rules, fixes.take(order), made_of.clean, made_of.tables)
        with self._lock:
            self._cache[key] = made
            while len(self._cache) > CACHED_DEVICES:
                self._cache.popitem(last=False)
        return made


# --- the device view ----------------------------------------------------------------------

def device_view(facts: DeviceData, pipeline: Pipeline | None, device_id: str, *,
                from_ms: int | None, to_ms: int | None, points: int) -> dict[str, Any]:
    """Everything the device view draws, for the fixes and facts in [from_ms, to_ms]."""
    t = facts.raw.t_ms
    span = {"first_ms": int(t[0]) if len(t) else None, "last_ms": int(t[-1]) if len(t) else None}
    lo = from_ms if from_ms is not None else (span["first_ms"] or 0)
    hi = to_ms if to_ms is not None else (span["last_ms"] or 0)
    tables = facts.tables
    stops = _rows(_between(tables["facts_stop"], "started_ms", "finished_ms", lo, hi),
                  STOP_COLUMNS)
    legs = _rows(_between(tables["facts_leg"], "started_ms", "finished_ms", lo, hi), LEG_COLUMNS)
    all_ends = tables["facts_leg_end"]
    champion, p_all = _judge(pipeline, facts)
    inside = _overlapping(all_ends, "ended_ms", "ended_ms", lo, hi)
    leg_ends = _rows(all_ends.filter(pa.array(inside)), LEG_END_COLUMNS)
    if champion is not None and p_all is not None:
        called = champion.model.call(all_ends, p_all)[inside].tolist()
        for row, pi, ci in zip(leg_ends, p_all[inside].tolist(), called, strict=True):
            row["p_parked"], row["parked"] = pi, ci
    else:
        for row in leg_ends:
            row["p_parked"] = row["parked"] = None
    return {
        "device_id": device_id,
        "rules": {"name": facts.rules.name, "identity": facts.rules.identity},
        "model": _model(champion), "span": span, "range": {"from_ms": lo, "to_ms": hi},
        "raw": _line(facts.raw, lo, hi, points), "track": _line(facts.clean, lo, hi, points),
        "stops": stops, "legs": legs, "leg_ends": leg_ends,
        "places": _rows(tables["facts_place"], PLACE_COLUMNS),
        "car": _car(pipeline, device_id),
    }


def leg_end_detail(con: duckdb.DuckDBPyConnection, facts: DeviceData, pipeline: Pipeline | None,
                   device_id: str, ended_ms: int) -> dict[str, Any]:
    """One vehicle-leg end: its features, p(parked) and what it was made of."""
    ends = facts.tables["facts_leg_end"]
    hit = np.flatnonzero(ends.column("ended_ms").to_numpy() == ended_ms)
    if not len(hit):
        raise ApiError(404, "not_found", f"device {device_id!r} has no vehicle-leg end at "
                       f"{ended_ms} under rules {facts.rules.identity}")
    i = int(hit[0])
    row = ends.slice(i, 1)
    out = _rows(row, LEG_END_COLUMNS)[0]
    champion, p_all = _judge(pipeline, facts)
    model = _model(champion)
    p = None if champion is None or p_all is None else float(p_all[i])
    if model is not None and champion is not None:
        model |= {"learner": champion.model.learner, "spec": champion.model.spec,
                  "features": list(champion.model.features)}
    first, last = out["leg_started_ms"], out["decided_ms"]
    batches = con.sql("""
        SELECT f.batch_no, b.batch_id, b.source, b.received_ms, count(*) AS n_fixes
        FROM raw_fix f JOIN raw_batch b USING (batch_no)
        WHERE f.device_id = $d AND f.t_ms BETWEEN $lo AND $hi
        GROUP BY ALL ORDER BY f.batch_no""", params={"d": device_id, "lo": first, "hi": last}
    ).to_arrow_table().to_pylist()
    return {
        "device_id": device_id, **out,
        "rules": {"name": facts.rules.name, "identity": facts.rules.identity},
        "model": model, "p_parked": p,
        "parked": None if p is None or champion is None else bool(
            champion.model.call(row, np.array([p]))[0]),
        "features": {name: _plain(row.column(name)[0].as_py()) for name in FEATURES},
        "lineage": {"window": {"from_ms": first, "to_ms": last},
                    "n_fixes": sum(b["n_fixes"] for b in batches),
                    "batches": batches},
        "labels": _statements(con, device_id, ended_ms),
    }


def _judge(pipeline: Pipeline | None, facts: DeviceData
           ) -> tuple[ServedModel | None, np.ndarray | None]:
    """The champion (read once: a swap may happen meanwhile) and its p(parked) for every leg
    end of ``facts``, when it was trained on their rules (else None, None)."""
    champion = pipeline.champion if pipeline is not None else None
    if champion is None or champion.model.rules_version != facts.rules.identity:
        return None, None
    p = facts.judged.get(champion.version)
    if p is None:
        with one_thread():
            p = champion.model.predict(facts.tables["facts_leg_end"])
        facts.judged[champion.version] = p
    return champion, p


def _model(champion: ServedModel | None) -> dict[str, Any] | None:
    return None if champion is None else {"version": champion.version,
                                          "threshold": champion.model.threshold}


def _car(pipeline: Pipeline | None, device_id: str) -> Any:
    if pipeline is None:
        return None
    body = pipeline.answers.get(device_id)
    return orjson.loads(body if body is not None else pipeline.unknown_answer(device_id))


def _statements(con: duckdb.DuckDBPyConnection, device_id: str, ended_ms: int
                ) -> list[dict[str, Any]]:
    """The person's own statements near a leg end: label spans ending, and feedback on
    answers parked, within :data:`MATCH_S` of it."""
    near = {"d": device_id, "lo": ended_ms - MATCH_S * 1000, "hi": ended_ms + MATCH_S * 1000}
    rows = con.sql("""
        SELECT end_ms AS t_ms, 'label' AS kind, mode, NULL::BOOLEAN AS parked, batch_no, seq
        FROM raw_label WHERE device_id = $d AND end_ms BETWEEN $lo AND $hi
        UNION ALL
        SELECT parked_at_ms, 'feedback', NULL, parked, batch_no, seq
        FROM raw_feedback WHERE device_id = $d AND parked_at_ms BETWEEN $lo AND $hi
        ORDER BY t_ms, batch_no, seq""", params=near).to_arrow_table()
    return [{k: v for k, v in r.items() if v is not None} for r in rows.to_pylist()]


# --- two rules versions -------------------------------------------------------------------

def diff(a: DeviceData, b: DeviceData, device_id: str) -> dict[str, Any]:
    """One device's stops and leg ends under two rules versions, paired, and what changed."""
    sides = {}
    for name, f in (("a", a), ("b", b)):
        sides[name] = {"name": f.rules.name, "identity": f.rules.identity,
                       "stops": _rows(f.tables["facts_stop"], STOP_COLUMNS),
                       "leg_ends": _rows(f.tables["facts_leg_end"], LEG_END_COLUMNS),
                       "legs": f.tables["facts_leg"].num_rows,
                       "places": f.tables["facts_place"].num_rows}
    sa, sb = sides["a"]["stops"], sides["b"]["stops"]
    ea, eb = sides["a"]["leg_ends"], sides["b"]["leg_ends"]
    return {"device_id": device_id, "a": sides["a"], "b": sides["b"],
            "stops": _compare(sa, sb, pair_stops(sa, sb), "started_ms", "finished_ms"),
            "leg_ends": _compare(ea, eb, pair_leg_ends(ea, eb), "ended_ms", "ended_ms")}


def pair_stops(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs (i, j) of stops that overlap in time, each stop in at most one pair, the
    longest overlaps first (stops of one version never overlap each other).

    >>> s = lambda t0, t1: {"started_ms": t0, "finished_ms": t1}
    >>> pair_stops([s(0, 10), s(20, 30)], [s(5, 25), s(28, 40)])
    [(0, 0), (1, 1)]
    """
    candidates = []
    j0 = 0
    for i, x in enumerate(a):
        while j0 < len(b) and b[j0]["finished_ms"] < x["started_ms"]:
            j0 += 1
        j = j0
        while j < len(b) and b[j]["started_ms"] <= x["finished_ms"]:
            overlap = min(x["finished_ms"], b[j]["finished_ms"]) - \
                max(x["started_ms"], b[j]["started_ms"])
            candidates.append((-overlap, i, j))
            j += 1
    return _greedy(candidates)


def pair_leg_ends(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """Pairs (i, j) of leg ends within :data:`PAIR_LEG_ENDS_MS` of each other, nearest first.

    >>> e = lambda t: {"ended_ms": t}
    >>> pair_leg_ends([e(0), e(1_000_000)], [e(60_000), e(120_000)])
    [(0, 0)]
    """
    tb = np.array([x["ended_ms"] for x in b], dtype=np.int64)
    candidates = []
    for i, x in enumerate(a):
        t = x["ended_ms"]
        lo, hi = np.searchsorted(tb, [t - PAIR_LEG_ENDS_MS, t + PAIR_LEG_ENDS_MS + 1])
        candidates += [(abs(int(tb[j]) - t), i, int(j)) for j in range(lo, hi)]
    return _greedy(candidates)


def _greedy(candidates: list[tuple[int, int, int]]) -> list[tuple[int, int]]:
    used_a: set[int] = set()
    used_b: set[int] = set()
    pairs = []
    for _, i, j in sorted(candidates):
        if i not in used_a and j not in used_b:
            used_a.add(i)
            used_b.add(j)
            pairs.append((i, j))
    return sorted(pairs)


def _compare(a: list[dict[str, Any]], b: list[dict[str, Any]], pairs: list[tuple[int, int]],
             start: str, end: str) -> dict[str, Any]:
    same, changed = 0, []
    for i, j in pairs:
        x, y = a[i], b[j]
        moved = float(haversine_m(x["lat"], x["lon"], y["lat"], y["lon"]))
        if x[start] == y[start] and x[end] == y[end] and moved <= SAME_M:
            same += 1
        else:
            changed.append({"a": x, "b": y, "moved_m": round(moved, 1)})
    paired_a = {i for i, _ in pairs}
    paired_b = {j for _, j in pairs}
    return {"same": same, "changed": changed,
            "only_a": [x for i, x in enumerate(a) if i not in paired_a],
            "only_b": [y for j, y in enumerate(b) if j not in paired_b]}


# --- helpers ------------------------------------------------------------------------------

def _overlapping(table: pa.Table, start: str, end: str, lo: int, hi: int) -> np.ndarray:
    s, e = table.column(start).to_numpy(), table.column(end).to_numpy()
    return np.asarray((e >= lo) & (s <= hi))


def _between(table: pa.Table, start: str, end: str, lo: int, hi: int) -> pa.Table:
    """Rows overlapping [lo, hi]."""
    return table.filter(pa.array(_overlapping(table, start, end, lo, hi)))


def _line(f: Fixes, lo: int, hi: int, points: int) -> dict[str, Any]:
    """Fixes in [lo, hi] (time order), every k-th one so that at most ``points`` remain (the
    first and last always)."""
    a = int(np.searchsorted(f.t_ms, lo, side="left"))
    b = int(np.searchsorted(f.t_ms, hi, side="right"))
    n = b - a
    idx = np.arange(a, b) if n <= points else \
        np.unique(np.linspace(a, b - 1, points).round().astype(np.int64))
    return {"n": n, "t": f.t_ms[idx].tolist(), "lat": np.round(f.lat[idx], 6).tolist(),
            "lon": np.round(f.lon[idx], 6).tolist()}


def _rows(table: pa.Table, columns: tuple[str, ...]) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()}
            for row in table.select(list(columns)).to_pylist()]


def _plain(v: Any) -> Any:
    """NaN as None (JSON has no NaN)."""
    return None if isinstance(v, float) and v != v else v
