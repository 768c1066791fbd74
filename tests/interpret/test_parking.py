"""Interpretations of leg ends: judged once per model version, and "where is my car?" made of
them. Facts are written straight into the fact tables; the model is the rule baseline."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from parkloop.errors import ModelError
from parkloop.facts.build import ensure_tables
from parkloop.facts.tables import SCHEMAS
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.model import ParkedModel
from parkloop.interpret.parking import (
    EXPORT_COLUMNS,
    MOVED_M,
    export_parked,
    parking_events,
    score_pending,
    where_is_car,
)
from parkloop.store import Store

RULES = "v1@0123456789ab"
T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
HOUR = 3_600_000
HOME = (48.137, 11.575)
M_PER_DEG_LAT = 111_195.0
DRIVE_MPS, BUS_MPS = 14.0, 6.0  # leg_p85_speed_mps of a car drive and of a bus ride
MODEL = ParkedModel(ThresholdRule(0, 10.0), ("leg_p85_speed_mps",), 0.5, "rule", "test@0",
                    RULES)


def north(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return point[0] + metres / M_PER_DEG_LAT, point[1]


def add_leg(store: Store, device: str, start_h: float, end_h: float,
            start: tuple[float, float], end: tuple[float, float], p85_mps: float,
            rules: str = RULES) -> int:
    """A vehicle leg and its leg end, as the facts engine would write them; returns the end's
    time, ms."""
    started, ended = T0 + int(start_h * HOUR), T0 + int(end_h * HOUR)
    key = {"rules_version": rules, "device_id": device}
    leg = {**key, "started_ms": started, "finished_ms": ended, "mode": "vehicle",
           "start_lat": start[0], "start_lon": start[1], "end_lat": end[0], "end_lon": end[1]}
    leg_end = {**key, "ended_ms": ended, "lat": end[0], "lon": end[1], "leg_started_ms": started,
               "decided_ms": ended + 600_000, "leg_p85_speed_mps": p85_mps}
    for name, row in (("facts_leg", leg), ("facts_leg_end", leg_end)):
        store.con.register("_row", pa.Table.from_pylist([row], schema=SCHEMAS[name]))
        store.con.execute(f"INSERT INTO {name} SELECT * FROM _row")
        store.con.unregister("_row")
    return ended


def add_walk(store: Store, device: str, start_h: float, start: tuple[float, float]) -> None:
    """An on-foot leg (not a vehicle leg, so it never moves a car)."""
    row = {"rules_version": RULES, "device_id": device, "started_ms": T0 + int(start_h * HOUR),
           "finished_ms": T0 + int(start_h * HOUR) + 600_000, "mode": "other",
           "start_lat": start[0], "start_lon": start[1], "end_lat": start[0],
           "end_lon": start[1]}
    store.con.register("_row", pa.Table.from_pylist([row], schema=SCHEMAS["facts_leg"]))
    store.con.execute("INSERT INTO facts_leg SELECT * FROM _row")
    store.con.unregister("_row")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.create(tmp_path / "store") as s:
        ensure_tables(s)
        s.con.execute(
            "INSERT INTO facts_build VALUES (?, 'v1', '{}', 'test', 0, 0, 0.0, 0, 0, 0, 0)",
            [RULES])
        yield s


def judge(store: Store, version: str = "1") -> int:
    return score_pending(store, MODEL, version)


def rebuilt(store: Store) -> None:
    """What `parkloop facts build` records when it replaces a rules version's facts."""
    store.con.execute("UPDATE facts_build SET built_ms = built_ms + 1 WHERE rules_version = ?",
                      [RULES])


def test_the_latest_parked_leg_end_is_where_the_car_is(store: Store) -> None:
    work, shop, bus_stop, far = north(HOME, 3000), north(HOME, 5000), north(HOME, 8000), \
        north(HOME, 9000)
    add_leg(store, "d", 1, 1.5, HOME, work, DRIVE_MPS)                # parked at work
    parked_at = add_leg(store, "d", 3, 3.2, work, shop, DRIVE_MPS)    # drove on, parked at shop
    add_walk(store, "d", 3.3, shop)
    add_leg(store, "d", 4, 4.5, bus_stop, far, BUS_MPS)               # later: a bus ride
    assert judge(store) == 3
    answer = where_is_car(store, "d", "1", RULES)
    assert answer.parked
    assert (answer.lat, answer.lon) == pytest.approx(shop)
    assert answer.parked_at_ms == parked_at
    assert answer.p_parked == 1.0
    assert (answer.model_version, answer.rules_version, answer.reason) == ("1", RULES,
                                                                            "parked")


@pytest.mark.parametrize(("start_m", "moved"), [(0.0, True), (100.0, True),
                                                 (MOVED_M - 20, True), (MOVED_M + 20, False),
                                                 (2000.0, False)])
def test_a_later_vehicle_leg_from_the_car_drives_it_away(store: Store, start_m: float,
                                                         moved: bool) -> None:
    parked_at = add_leg(store, "d", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    # a later vehicle leg whose end nobody calls parked (slow, like a bus or a drop-off)
    add_leg(store, "d", 5, 5.5, north(HOME, 3000 + start_m), north(HOME, 6000), BUS_MPS)
    judge(store)
    answer = where_is_car(store, "d", "1", RULES)
    assert answer.parked is not moved
    if moved:
        assert answer.reason == "the car was driven away from where it was last parked"
        assert (answer.lat, answer.lon, answer.parked_at_ms) == (None, None, None)
    else:
        assert answer.parked_at_ms == parked_at


def test_a_vehicle_leg_before_the_parking_does_not_move_the_car(store: Store) -> None:
    spot = north(HOME, 3000)
    add_leg(store, "d", 0, 0.5, spot, north(HOME, 5000), BUS_MPS)  # earlier, from the same spot
    parked_at = add_leg(store, "d", 1, 1.5, HOME, spot, DRIVE_MPS)
    add_walk(store, "d", 2, spot)  # walking from the car is not driving it
    judge(store)
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == parked_at


def test_no_parking_event_means_unknown(store: Store) -> None:
    add_leg(store, "bus-rider", 1, 1.5, HOME, north(HOME, 3000), BUS_MPS)
    add_leg(store, "driver", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    judge(store)
    for device in ("bus-rider", "nobody"):
        answer = where_is_car(store, device, "1", RULES)
        assert not answer.parked
        assert answer.reason.startswith("no parking event known")
        assert (answer.lat, answer.lon, answer.parked_at_ms, answer.p_parked) == (None,) * 4
    # another model version, or another rules version, has judged nothing
    assert where_is_car(store, "driver", "2", RULES).reason == "no parking event known"
    assert where_is_car(store, "driver", "1", "v1@other").reason == "no parking event known"
    assert where_is_car(store, "driver", "1", RULES).parked


def _judged(store: Store, version: str = "1") -> list[tuple[Any, ...]]:
    return store.con.execute(
        "SELECT device_id, ended_ms, p_parked, parked, decided_at_ms FROM interp_leg_end "
        "WHERE model_version = ? ORDER BY device_id, ended_ms", [version]).fetchall()


def test_score_pending_judges_only_what_is_new(store: Store) -> None:
    add_leg(store, "a", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    add_leg(store, "a", 2, 2.5, north(HOME, 3000), HOME, BUS_MPS)
    add_leg(store, "b", 1, 1.5, HOME, north(HOME, 1000), DRIVE_MPS)
    add_leg(store, "b", 1, 1.2, HOME, north(HOME, 1000), DRIVE_MPS, rules="v2@other")
    assert judge(store) == 3
    first = _judged(store)
    assert [(d, p, c) for d, _, p, c, _ in first] == [("a", 1.0, True), ("a", 0.0, False),
                                                      ("b", 1.0, True)]
    assert judge(store) == 0
    assert _judged(store) == first

    # facts built later (new fixes, a new device): the rebuild may have changed any leg end
    # (more of a drive, more minutes after an end), so all are judged afresh; the earlier
    # judgements stay as history
    new = {("a", add_leg(store, "a", 6, 6.5, HOME, north(HOME, 4000), DRIVE_MPS)),
           ("c", add_leg(store, "c", 1, 1.5, HOME, north(HOME, 2000), BUS_MPS))}
    rebuilt(store)
    assert judge(store) == 5
    after = _judged(store)
    assert set(first) <= set(after)
    assert {r[:2] for r in after if r not in first} >= new
    assert len(after) == 8
    assert judge(store) == 0

    # another model version judges everything itself, and only its own rows are its answers
    assert judge(store, "2") == 5
    assert judge(store, "2") == 0
    rows = store.con.execute("SELECT model_version, rules_version, count(*) FROM "
                             "interp_leg_end GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [("1", RULES, 8), ("2", RULES, 5)]
    events = parking_events(store, "1", RULES)
    assert events.column("device_id").to_pylist() == ["a", "a", "b"]
    assert set(events.column("model_version").to_pylist()) == {"1"}


def test_a_leg_end_gone_from_the_facts_is_no_longer_an_answer(store: Store) -> None:
    # facts built mid-drive end a provisional vehicle leg at the last fix so far
    spot = north(HOME, 1500)
    provisional = add_leg(store, "d", 1, 1.25, HOME, spot, DRIVE_MPS)
    assert judge(store) == 1
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == provisional
    # the rest of the drive arrives; the rebuild replaces the rules version's facts
    for table in ("facts_leg", "facts_leg_end"):
        store.con.execute(f"DELETE FROM {table} WHERE rules_version = ?", [RULES])
    parked_at = add_leg(store, "d", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    rebuilt(store)
    assert judge(store) == 1
    assert parking_events(store, "1", RULES).column("ended_ms").to_pylist() == [parked_at]
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == parked_at
    # the judgement itself stays recorded (interpretations are only added)
    assert [t for _, t, *_ in _judged(store)] == [provisional, parked_at]


def test_missing_features_and_unbuilt_facts_are_model_errors(store: Store,
                                                             tmp_path: Path) -> None:
    add_leg(store, "a", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    other = ParkedModel(ThresholdRule(0, 10.0), ("leg_p85_speed_mps",), 0.5, "rule", "test@0",
                        "v9@unbuilt")
    with pytest.raises(ModelError, match="run `parkloop facts build` first"):
        score_pending(store, other, "1")
    with Store.create(tmp_path / "empty") as empty, \
            pytest.raises(ModelError, match="no facts for rules version"):
        score_pending(empty, MODEL, "1")


def test_export_writes_the_parked_csv(store: Store, tmp_path: Path) -> None:
    add_leg(store, "a", 1, 1.5, HOME, north(HOME, 3000), DRIVE_MPS)
    add_leg(store, "a", 2, 2.5, north(HOME, 3000), HOME, BUS_MPS)
    out = tmp_path / "out" / "parked.csv"
    assert export_parked(store, MODEL, "1", out) == 1
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == EXPORT_COLUMNS
    device, parked_at, lat, lon, p, model, rules = rows[1]
    assert (device, parked_at, model, rules) == ("a", "2026-01-05T09:30:00.000Z", "1", RULES)
    assert (float(lat), float(lon)) == pytest.approx(north(HOME, 3000))
    assert float(p) == 1.0
    assert len(rows) == 2


def say(store: Store, device: str, at_ms: int, where: tuple[float, float], parked: bool,
        said_h: float) -> None:
    """The person's word about a parking answer, as the API stores it (a feedback event)."""
    from parkloop.raw.events import parse_events
    from parkloop.raw.log import store_batch

    store_batch(store, parse_events(device, f"fb-{at_ms}-{parked}-{said_h}", [{
        "kind": "feedback", "t": T0 + int(said_h * HOUR), "parked_at": at_ms,
        "lat": where[0], "lon": where[1], "parked": parked}]))


def test_what_the_person_said_about_a_parking_answer_is_the_answer(store: Store) -> None:
    work, shop, pin = north(HOME, 3000), north(HOME, 5000), north(HOME, 7000)
    at_work = add_leg(store, "d", 1, 1.5, HOME, work, DRIVE_MPS)  # the model calls it parked
    at_shop = add_leg(store, "d", 3, 3.2, north(work, 500), shop, BUS_MPS)  # it does not
    judge(store)
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == at_work

    say(store, "d", at_work, work, parked=False, said_h=4)  # "no, I did not park here"
    answer = where_is_car(store, "d", "1", RULES)
    assert (answer.status, answer.reason) == (
        "unknown", "no parking event known: you said you did not park where parkloop thought")

    say(store, "d", at_shop, shop, parked=True, said_h=4.1)  # "yes" where the model said no
    answer = where_is_car(store, "d", "1", RULES)
    assert (answer.status, answer.parked_at_ms, answer.reason) == (
        "parked", at_shop, "you said you parked here")
    assert (answer.lat, answer.lon) == pytest.approx(shop)
    assert answer.p_parked == 0.0  # the model's own judgement stays in the answer

    pinned_at = T0 + 5 * HOUR
    say(store, "d", pinned_at, pin, parked=True, said_h=5)  # "I parked here": no leg end
    answer = where_is_car(store, "d", "1", RULES)
    assert (answer.status, answer.parked_at_ms, answer.p_parked) == ("parked", pinned_at, None)
    assert (answer.lat, answer.lon) == pytest.approx(pin)

    say(store, "d", pinned_at, pin, parked=False, said_h=5.1)  # changed their mind
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == at_shop
    say(store, "d", pinned_at, pin, parked=True, said_h=5.2)   # and back
    assert where_is_car(store, "d", "1", RULES).parked_at_ms == pinned_at

    add_leg(store, "d", 6, 6.5, north(pin, 50), HOME, BUS_MPS)  # driven from the pin
    rebuilt(store)
    judge(store)
    assert where_is_car(store, "d", "1", RULES).status == "driven_away"
    assert where_is_car(store, "other", "1", RULES).status == "unknown"  # nobody else's word
