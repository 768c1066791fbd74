"""End-to-end quality on a hand-built store: exported events against labelled car-segment ends,
with figures computed by hand."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from parkloop.interpret.endtoend import end_to_end, subset
from parkloop.raw.events import parse_events
from parkloop.raw.log import store_batch
from parkloop.store import Store

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
MIN = 60_000
STEP_MS = 30_000  # a fix every 30 s, moving east at 5 m/s: 150 m between fixes
LAT = 52.5
M_PER_DEG_LAT = 111_195.0
M_PER_DEG_LON = M_PER_DEG_LAT * math.cos(math.radians(LAT))

# p1: car 08:00-08:20, bus 08:40-09:00, nothing said after that
# p2: car 08:00-08:20, car 09:00-09:20
# p3: fixes, but no labels at all
SEGMENTS = {"p1": [("car", 0, 20), ("bus", 40, 60)], "p2": [("car", 0, 20), ("car", 60, 80)]}


def where(t_ms: int) -> tuple[float, float]:
    """The position of every device's fix at ``t_ms`` (a multiple of 30 s after T0)."""
    return LAT, 13.4 + (t_ms - T0) / 1000 * 5.0 / M_PER_DEG_LON


def shifted(t_ms: int, north_m: float = 0.0, east_m: float = 0.0) -> tuple[float, float]:
    lat, lon = where(t_ms)
    return lat + north_m / M_PER_DEG_LAT, lon + east_m / M_PER_DEG_LON


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    path = tmp_path_factory.mktemp("e2e") / "store"
    with Store.create(path) as s:
        for device in ("p1", "p2", "p3"):
            fixes = [{"kind": "fix", "t": t, "lat": where(t)[0], "lon": where(t)[1],
                      "accuracy_m": 5.0} for t in range(T0, T0 + 180 * MIN + 1, STEP_MS)]
            assert store_batch(s, parse_events(device, "fixes", fixes)).n_stored == len(fixes)
            labels = [{"kind": "label", "t": T0 + 200 * MIN, "start": T0 + a * MIN,
                       "end": T0 + b * MIN, "mode": mode}
                      for mode, a, b in SEGMENTS.get(device, [])]
            if labels:
                assert store_batch(s, parse_events(device, "labels", labels)).n_stored == \
                    len(labels)
    with Store.open(path, read_only=True) as s:
        yield s


def events(*rows: tuple[str, int, tuple[float, float]]) -> pa.Table:
    return pa.table({"device_id": pa.array([r[0] for r in rows], pa.string()),
                     "t_ms": pa.array([r[1] for r in rows], pa.int64()),
                     "lat": [r[2][0] for r in rows], "lon": [r[2][1] for r in rows]})


def person(figures: dict[str, Any], device: str) -> dict[str, Any]:
    (row,) = [r for r in figures["per_person"] if r["device_id"] == device]
    return row


CAR_END = T0 + 20 * MIN
BUS_END = T0 + 60 * MIN


def test_an_event_at_the_car_end_is_a_hit(store: Store) -> None:
    got = end_to_end(store, events(("p1", CAR_END, where(CAR_END))), ["p1"])
    assert (got["car_ends"], got["found"], got["hits"], got["false_alarms"]) == (1, 1, 1, 0)
    assert (got["precision"], got["recall"], got["f1"]) == (1.0, 1.0, 1.0)


def test_within_the_window_still_hits(store: Store) -> None:
    # 4 min later and 250 m off: inside MATCH_S (300 s) and MATCH_M (300 m)
    got = end_to_end(store, events(("p1", CAR_END + 4 * MIN, shifted(CAR_END, north_m=250))),
                     ["p1"])
    assert (got["found"], got["hits"], got["recall"]) == (1, 1, 1.0)


@pytest.mark.parametrize(("t_ms", "north_m"), [(CAR_END, 400.0), (CAR_END + 6 * MIN, 0.0)],
                         ids=["400-m-away", "6-min-late"])
def test_an_event_too_far_from_the_car_end_misses_it(store: Store, t_ms: int,
                                                     north_m: float) -> None:
    got = end_to_end(store, events(("p1", t_ms, shifted(t_ms, north_m=north_m))), ["p1"])
    assert (got["car_ends"], got["found"], got["hits"], got["false_alarms"]) == (1, 0, 0, 0)
    assert got["recall"] == 0.0
    assert math.isnan(got["precision"])  # nothing judged: nobody said what happened there
    assert got["f1"] == 0.0  # a car end missed, nothing found: F1 0, not undefined


@pytest.mark.parametrize("t_ms", [BUS_END, T0 + 50 * MIN, T0 + 41 * MIN],
                         ids=["at-bus-end", "inside-bus", "just-after-bus-start"])
def test_an_event_at_or_inside_the_bus_segment_is_a_false_alarm(store: Store,
                                                                t_ms: int) -> None:
    got = end_to_end(store, events(("p1", t_ms, where(t_ms))), ["p1"])
    assert (got["car_ends"], got["found"], got["hits"], got["false_alarms"]) == (1, 0, 0, 1)
    assert (got["precision"], got["recall"], got["f1"]) == (0.0, 0.0, 0.0)


@pytest.mark.parametrize("t_ms", [T0 + 30 * MIN, T0 + 120 * MIN], ids=["between", "after"])
def test_an_event_in_an_unlabelled_stretch_is_not_judged(store: Store, t_ms: int) -> None:
    got = end_to_end(store, events(("p1", t_ms, where(t_ms))), ["p1"])
    assert (got["hits"], got["false_alarms"]) == (0, 0)
    assert person(got, "p1")["events"] == 1
    assert math.isnan(got["precision"])


def test_two_events_at_one_car_end_are_two_hits_and_one_found_end(store: Store) -> None:
    got = end_to_end(store, events(("p1", CAR_END, where(CAR_END)),
                                   ("p1", CAR_END + MIN, shifted(CAR_END, east_m=50))), ["p1"])
    assert (got["car_ends"], got["found"], got["hits"], got["false_alarms"]) == (1, 1, 2, 0)


def test_pooled_and_per_person_figures_match_a_hand_count(store: Store) -> None:
    ev = events(
        ("p1", CAR_END, where(CAR_END)),                        # hit
        ("p1", BUS_END, where(BUS_END)),                        # false alarm: bus end
        ("p1", T0 + 50 * MIN, where(T0 + 50 * MIN)),            # false alarm: inside the bus
        ("p1", T0 + 120 * MIN, where(T0 + 120 * MIN)),          # not judged
        ("p2", CAR_END, shifted(CAR_END, north_m=400)),         # misses p2's first car end
        ("p2", T0 + 81 * MIN, shifted(T0 + 80 * MIN, east_m=100)),  # finds the second
        ("p3", T0 + 20 * MIN, where(T0 + 20 * MIN)),            # p3 said nothing: left out
    )
    got = end_to_end(store, ev)
    assert [r["device_id"] for r in got["per_person"]] == ["p1", "p2"]
    p1, p2 = person(got, "p1"), person(got, "p2")
    assert {k: p1[k] for k in ("car_ends", "found", "events", "hits", "false_alarms")} == \
        {"car_ends": 1, "found": 1, "events": 4, "hits": 1, "false_alarms": 2}
    assert (p1["precision"], p1["recall"], p1["f1"]) == pytest.approx((1 / 3, 1.0, 0.5))
    assert {k: p2[k] for k in ("car_ends", "found", "events", "hits", "false_alarms")} == \
        {"car_ends": 2, "found": 1, "events": 2, "hits": 1, "false_alarms": 0}
    assert (p2["precision"], p2["recall"], p2["f1"]) == pytest.approx((1.0, 0.5, 2 / 3))
    # pooled: 3 car ends, 2 found; 4 judged events, 2 hits
    assert (got["car_ends"], got["found"], got["hits"], got["false_alarms"]) == (3, 2, 2, 2)
    assert (got["precision"], got["recall"], got["f1"]) == pytest.approx((0.5, 2 / 3, 4 / 7))

    assert subset(got, {"p1"}) == {k: p2[k] for k in (
        "car_ends", "found", "hits", "false_alarms", "precision", "recall", "f1")}
    # the devices asked for, in order, even one without events or labels
    only = end_to_end(store, ev, ["p2", "p3"])
    assert [r["device_id"] for r in only["per_person"]] == ["p2", "p3"]
    assert person(only, "p3")["car_ends"] == 0
    assert (only["car_ends"], only["found"], only["hits"]) == (2, 1, 1)


def test_no_events_find_nothing(store: Store) -> None:
    got = end_to_end(store, events())
    assert (got["car_ends"], got["found"], got["recall"]) == (3, 0, 0.0)
    assert math.isnan(got["precision"])


def test_the_store_is_left_as_it_was(store: Store) -> None:
    before = store.con.sql("SELECT table_name FROM information_schema.tables "
                           "ORDER BY 1").fetchall()
    end_to_end(store, events(("p1", CAR_END, where(CAR_END))))
    assert store.con.sql("SELECT table_name FROM information_schema.tables "
                         "ORDER BY 1").fetchall() == before
