"""Leg-end features see nothing after their decision time (leg end + the rules' wait)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from parkloop.facts.build import read_device
from parkloop.facts.features import FEATURES, Signals
from parkloop.facts.pipeline import device_facts
from parkloop.facts.rules import load_rules
from parkloop.facts.said import SAID_FEATURES
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store


def truncated(fixes: object, signals: Signals, until_ms: int) -> tuple[object, Signals]:
    keep = np.flatnonzero(fixes.t_ms <= until_ms)  # type: ignore[attr-defined]
    lk = signals.link_ms <= until_ms
    ak = signals.activity_ms <= until_ms
    said = signals.statements
    return fixes.take(keep), Signals(  # type: ignore[attr-defined]
        signals.link_ms[lk], signals.link_connected[lk], signals.activity_ms[ak],
        signals.activity_on_foot[ak], said.take(said.said_ms <= until_ms))


def test_features_at_decision_time_equal_batch_features(sim_store: Store) -> None:
    rules = load_rules("v1")
    checked = 0
    for (device,) in sim_store.con.execute(
            "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall():
        fixes, signals = read_device(sim_store, device)
        ends = device_facts(device, fixes, signals, rules).tables["facts_leg_end"]
        for row in ends.to_pylist()[:6]:
            f, s = truncated(fixes, signals, row["decided_ms"])
            early = device_facts(device, f, s, rules).tables["facts_leg_end"]  # type: ignore[arg-type]
            match = early.filter(pa.compute.equal(early.column("ended_ms"), row["ended_ms"]))
            assert match.num_rows == 1, f"{device}: leg end {row['ended_ms']} not yet decided"
            for name in FEATURES:
                a, b = match.column(name)[0].as_py(), row[name]
                assert a == b or (a != a and b != b), f"{device} {name}: {a} != {b}"
            checked += 1
    assert checked >= 10


def test_features_describe_the_leg(sim_store: Store) -> None:
    rules = load_rules("v1")
    fixes, signals = read_device(sim_store, "sim-default-s11-0000")
    ends = device_facts("d", fixes, signals, rules).tables["facts_leg_end"].to_pylist()
    assert ends
    for e in ends:
        assert e["leg_duration_s"] > 0
        assert e["leg_distance_m"] >= rules.params.legs.min_vehicle_leg_m
        assert 0 <= e["hour_local"] < 24
        assert 0 <= e["weekday_local"] <= 6
        assert e["leg_max_speed_mps"] >= rules.params.legs.vehicle_speed_mps
        assert e["max_away_m"] >= e["away_m"] >= 0
        assert e["decided_ms"] == e["ended_ms"] + rules.params.features.wait_s * 1000


def test_what_a_person_said_is_known_at_decision_time_as_in_the_batch(
        tmp_path: Path, geolife_mini: Path) -> None:
    rules = load_rules("v1")
    with Store.create(tmp_path / "s") as store:
        import_geolife(store, geolife_mini)
        fixes, signals = read_device(store, "geolife-021")
    assert len(signals.statements) > 0
    ends = device_facts("d", fixes, signals, rules).tables["facts_leg_end"].to_pylist()
    told = [e for e in ends if e["said_car_before"] + e["said_other_before"] > 0]
    assert told, "geolife-021 labels its trips: later leg ends know what was said"
    for row in told[::max(1, len(told) // 5)]:
        f, s = truncated(fixes, signals, row["decided_ms"])
        early = device_facts("d", f, s, rules).tables["facts_leg_end"]  # type: ignore[arg-type]
        match = early.filter(pa.compute.equal(early.column("ended_ms"), row["ended_ms"]))
        for name in SAID_FEATURES:
            a, b = match.column(name)[0].as_py(), row[name]
            assert a == b or (a != a and b != b), f"{name}: {a} != {b}"
