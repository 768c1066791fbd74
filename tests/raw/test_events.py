"""Typing of JSON events and the content hash that makes retries idempotent."""

from __future__ import annotations

import math
from datetime import timedelta, timezone

import pyarrow as pa
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from parkloop.errors import InvalidBatch
from parkloop.raw.events import (
    EventBatch,
    _parse_at_once,
    _parse_each,
    digests,
    parse_events,
)
from parkloop.raw.schema import KINDS, Field, Kind

T = "2026-01-05T08:00:00Z"


def reasons(batch: EventBatch) -> list[str]:
    return batch.rejects.column("reason").to_pylist()


def test_every_kind_is_typed_into_its_table() -> None:
    batch = parse_events("phone-1", "b1", [
        {"kind": "fix", "t": T, "lat": 52.5, "lon": 13.4, "accuracy_m": 5, "provider": "gps"},
        {"kind": "activity", "t": T, "activity": "in_vehicle", "confidence": 0.8},
        {"kind": "vehicle_link", "t": T, "connected": True, "link": "bluetooth"},
        {"kind": "label", "t": T, "start": "2026-01-05T09:00:00+01:00", "end": T,
         "mode": "car"},
        {"kind": "feedback", "t": T, "parked_at": T, "lat": 52.5, "lon": 13.4, "parked": False},
    ])
    assert {k: t.num_rows for k, t in batch.tables.items()} == {
        "fix": 1, "activity": 1, "vehicle_link": 1, "label": 1, "feedback": 1}
    assert batch.rejects.num_rows == 0
    label = batch.tables["label"].to_pylist()[0]
    assert label["start_ms"] == label["end_ms"] == 1_767_600_000_000  # +01:00 honoured
    assert batch.tables["feedback"].column("seq").to_pylist() == [4]


@pytest.mark.parametrize(("event", "reason"), [
    ({"kind": "teleport", "t": 0}, "unknown_kind"),
    ("not an object", "not_an_object"),
    ({"t": T, "lat": 1, "lon": 2}, "unknown_kind"),
    ({"kind": "fix", "t": T, "lat": "52.5", "lon": 13.4}, "wrong_type"),
    ({"kind": "fix", "t": T, "lat": True, "lon": 13.4}, "wrong_type"),
    ({"kind": "fix", "t": T, "lon": 13.4}, "missing_field"),
    ({"kind": "fix", "t": T, "lat": 1, "lon": 2, "colour": "red"}, "unknown_field"),
    ({"kind": "fix", "t": "2026-01-05T08:00:00", "lat": 1, "lon": 2}, "wrong_type"),
    ({"kind": "fix", "t": "yesterday", "lat": 1, "lon": 2}, "wrong_type"),
    ({"kind": "fix", "t": 1.5e12, "lat": 1, "lon": 2}, "wrong_type"),
    ({"kind": "vehicle_link", "t": T, "connected": "yes", "link": "usb"}, "wrong_type"),
])
def test_untypable_events_are_rejected_with_a_reason(event: object, reason: str) -> None:
    batch = parse_events("phone-1", "b1", [event])
    assert reasons(batch) == [reason]
    assert batch.rejects.column("detail")[0].as_py()  # a sentence, not empty
    assert batch.rejects.column("payload")[0].as_py()  # what was sent is kept


def test_all_problems_of_an_event_are_reported_at_once() -> None:
    batch = parse_events("p", "b", [{"kind": "fix", "t": T, "lat": "x", "extra": 1}])
    assert set(reasons(batch)[0].split(";")) == {"wrong_type", "missing_field", "unknown_field"}
    detail = batch.rejects.column("detail")[0].as_py()
    assert "lat" in detail
    assert "lon" in detail
    assert "extra" in detail


@pytest.mark.parametrize("bad", ["", " ", "a/b", "x" * 129, None, 7, "-lead"])
def test_unusable_ids_refuse_the_batch(bad: object) -> None:
    with pytest.raises(InvalidBatch):
        parse_events(bad, "b1", [])  # type: ignore[arg-type]
    with pytest.raises(InvalidBatch):
        parse_events("p", bad, [])  # type: ignore[arg-type]


def test_digest_ignores_key_order_and_time_spelling() -> None:
    a = parse_events("p", "b", [{"kind": "fix", "t": T, "lat": 1.0, "lon": 2.0}])
    b = parse_events("p", "b", [{"lon": 2, "lat": 1, "t": 1_767_600_000_000, "kind": "fix"}])
    assert a.digest() == b.digest()


events = st.lists(st.fixed_dictionaries({
    "kind": st.just("fix"),
    "t": st.integers(0, 2**41),
    "lat": st.floats(allow_nan=True, allow_infinity=True),
    "lon": st.floats(-180, 180),
    "accuracy_m": st.none() | st.floats(0, 100),
    "provider": st.none() | st.text(max_size=5),
}), min_size=1, max_size=20)


@given(events, st.data())
def test_digest_changes_with_any_value(evs: list[dict[str, object]], data: st.DataObject) -> None:
    i = data.draw(st.integers(0, len(evs) - 1))
    key = data.draw(st.sampled_from(["t", "lat", "lon", "accuracy_m", "provider"]))
    changed = [dict(e) for e in evs]
    old = changed[i][key]
    new = data.draw({"t": st.integers(0, 2**41), "lat": st.floats(-90, 90),
                     "lon": st.floats(-180, 180), "accuracy_m": st.none() | st.floats(0, 100),
                     "provider": st.none() | st.text(max_size=5)}[key])
    same = (old == new and type(old) is type(new)) or (
        isinstance(old, float) and isinstance(new, float) and math.isnan(old) and math.isnan(new))
    changed[i][key] = new
    a, b = parse_events("p", "b", evs), parse_events("p", "b", changed)
    assert (a.digest() == b.digest()) == same


@given(st.lists(events, min_size=1, max_size=6))
def test_bulk_digests_equal_one_by_one(batches: list[list[dict[str, object]]]) -> None:
    made = [parse_events("p", f"b{i}", evs) for i, evs in enumerate(batches)]
    fresh = [parse_events("p", f"b{i}", evs) for i, evs in enumerate(batches)]
    assert digests(made) == [b.digest() for b in fresh]


def test_digest_does_not_depend_on_arrow_chunking() -> None:
    cols = {"seq": [0, 1, 2], "t_ms": [1, 2, 3], "lat": [1.0, None, 3.0], "lon": [0.0] * 3}
    one = EventBatch.of("p", "b", "api", {"fix": cols})
    table = one.tables["fix"]
    chunked = pa.concat_tables([table.slice(0, 1), table.slice(1, 2)])
    assert EventBatch("p", "b", "api", {"fix": chunked}).digest() == one.digest()


# --- the fast path (each kind typed in one call) against the per-event path -------------------

OFFSETS = st.builds(timezone, st.timedeltas(timedelta(hours=-23, minutes=-59),
                                            timedelta(hours=23, minutes=59)))
ISO_TIMES = st.datetimes(timezones=OFFSETS).map(
    lambda d: d.isoformat().replace("+00:00", "Z"))
VALUES = {
    pa.int64(): st.integers(-(2**63), 2**63 - 1) | ISO_TIMES,  # every int64 field is a time
    pa.float64(): st.integers() | st.floats(),
    pa.string(): st.text(max_size=6),
    pa.bool_(): st.booleans(),
}
ODD = st.sampled_from(["1.5", True, None, 1.5, 7, [], {}, "2026-01-05T08:00:00", "yesterday",
                       "2026-01-05T08:00:00+01:00"])


def json_name(f: Field) -> str:
    return f.name.removesuffix("_ms")  # t_ms -> t, parked_at_ms -> parked_at


def well_formed(kind: Kind) -> st.SearchStrategy[dict[str, object]]:
    return st.fixed_dictionaries(
        {"kind": st.just(kind.name)}
        | {json_name(f): VALUES[f.arrow] for f in kind.fields if f.required},
        optional={json_name(f): st.none() | VALUES[f.arrow]
                  for f in kind.fields if not f.required})


WELL_FORMED = {k.name: well_formed(k) for k in KINDS}
ANY_WELL_FORMED = st.one_of(list(WELL_FORMED.values()))
NOT_AN_OBJECT = st.none() | st.integers() | st.text(max_size=4) | st.lists(ODD, max_size=2)
SPOILS = st.sampled_from(["value", "missing", "extra", "kind", "not_an_object"])


def spoil(draw: st.DrawFn, original: dict[str, object]) -> object:
    event = dict(original)
    how = draw(SPOILS)
    if how == "value":
        event[draw(st.sampled_from(sorted(event)))] = draw(ODD)
    elif how == "missing":
        del event[draw(st.sampled_from(sorted(event)))]
    elif how == "extra":
        event[draw(st.text(max_size=4))] = draw(ODD)
    elif how == "kind":
        event["kind"] = draw(st.sampled_from(["teleport", "", "Fix", 1, None, ["fix"]]))
    else:
        return draw(NOT_AN_OBJECT)
    return event


@st.composite
def sent(draw: st.DrawFn, spoilt: Kind) -> list[object]:
    """A batch as a client might send it: well-formed events of every kind and, often, among
    them events of the kind ``spoilt`` that are wrong in any of the ways there are."""
    events: list[object] = draw(st.lists(ANY_WELL_FORMED, max_size=25))
    for _ in range(draw(st.integers(0, 5))):
        bad = spoil(draw, draw(WELL_FORMED[spoilt.name]))
        events.insert(draw(st.integers(0, len(events))), bad)
    return events


def assert_same(batch: EventBatch, oracle: EventBatch) -> None:
    """Same tables (``Table.equals``, but NaN equals NaN, as Arrow's equality does not have it)
    and same rejects."""
    def rows(t: pa.Table) -> list[dict[str, object]]:
        return [{k: "NaN" if v != v else v for k, v in r.items()} for r in t.to_pylist()]
    assert list(batch.tables) == list(oracle.tables)
    for kind, table in oracle.tables.items():
        assert batch.tables[kind].equals(table) or (
            batch.tables[kind].schema.equals(table.schema)
            and rows(batch.tables[kind]) == rows(table))
    assert batch.rejects.equals(oracle.rejects)


@pytest.mark.parametrize("spoilt", KINDS, ids=lambda k: k.name)
@settings(max_examples=50)  # per kind
@given(data=st.data())
def test_typing_each_kind_at_once_equals_typing_each_event(spoilt: Kind,
                                                           data: st.DataObject) -> None:
    events = data.draw(sent(spoilt))
    oracle = _parse_each("p", "b", events, "api")
    event("well-formed" if oracle.rejects.num_rows == 0 else "with rejects")
    got = parse_events("p", "b", events)
    assert_same(got, oracle)
    assert got.digest() == oracle.digest()
    for sub in [events, *([e] for e in events)]:  # each event alone too: a bad one is not hidden
        each = _parse_each("p", "b", sub, "api")
        at_once = _parse_at_once("p", "b", sub, "api")
        assert (at_once is None) == (each.rejects.num_rows > 0)  # every well-formed batch is fast
        if at_once is not None:
            assert_same(at_once, each)


def test_a_time_beyond_int64_is_quarantined_not_a_crash() -> None:
    batch = parse_events("d", "b", [{"kind": "fix", "t": 2**63, "lat": 1.0, "lon": 2.0},
                                    {"kind": "fix", "t": 5, "lat": 1.0, "lon": 2.0}])
    assert batch.rejects.column("reason").to_pylist() == ["t_ms_out_of_range"]
    assert batch.tables["fix"].num_rows == 1
