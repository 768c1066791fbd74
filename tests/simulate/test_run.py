"""``simulate`` end to end: determinism, device independence, ground truth, labels, scenarios,
phone artefacts and clean raw input."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from parkloop.raw.schema import KINDS, MODES
from parkloop.raw.stats import raw_counts
from parkloop.simulate import SCENARIOS, SimulationSummary, simulate
from parkloop.store import Store

Sim = tuple[Store, SimulationSummary]
DEVICES, DAYS = 8, 3
TRUTH_ORDER = {"legs": "device_id, leg_no", "parking": "device_id, leg_no",
               "devices": "device_id"}


def _metres(lat1: str, lon1: str, lat2: str, lon2: str) -> str:
    """SQL for the distance (m) between two nearby WGS 84 points."""
    return (f"6371008.8 * radians(sqrt(pow({lat1} - {lat2}, 2) + "
            f"pow(({lon1} - {lon2}) * cos(radians({lat1})), 2)))")


def _table(store: Store, sql: str) -> pa.Table:
    return store.con.sql(sql).to_arrow_table()


def _raw(store: Store, where: str = "true") -> dict[str, pa.Table]:
    """Every raw table (without arrival-time columns) and every truth table."""
    out = {"raw_batch": _table(store, f"""SELECT batch_no, device_id, batch_id, content_hash,
        n_events, n_stored, n_quarantined FROM raw_batch WHERE {where} ORDER BY batch_no""")}
    for k in KINDS:
        out[k.table] = _table(store, f"SELECT * FROM {k.table} WHERE {where} "
                                     "ORDER BY batch_no, seq")
    for name, order in TRUTH_ORDER.items():
        out[f"truth.{name}"] = _table(store, f"SELECT * FROM truth.{name} WHERE {where} "
                                             f"ORDER BY {order}")
    return out


def _simulate(store: Store, *, devices: int = DEVICES, seed: int = 5,
              scenario: str = "default", label_share: float = 0.5) -> SimulationSummary:
    return simulate(store, devices=devices, days=DAYS, seed=seed, scenario=scenario,
                    label_share=label_share)


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Store.create(tmp_path_factory.mktemp("sim")) as store:
        yield store, _simulate(store)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with Store.create(tmp_path_factory.mktemp("shifted")) as store:
        yield store, _simulate(store, scenario="shifted")


def test_same_seed_gives_byte_identical_raw_events_and_truth(sim: Sim, tmp_path: Path) -> None:
    store, summary = sim
    with Store.create(tmp_path / "again") as again:
        assert _simulate(again) == summary
        first, second = _raw(store), _raw(again)
    for name, table in first.items():
        assert table.num_rows > 0 or name in ("raw_feedback", "quarantine"), name
        assert table.equals(second[name]), name


def test_another_seed_gives_other_events(sim: Sim, tmp_path: Path) -> None:
    store, _ = sim
    with Store.create(tmp_path / "other") as other:
        _simulate(other, seed=6, devices=2)
        hashes = set(_table(other, "SELECT content_hash FROM raw_batch").column(0).to_pylist())
        fixes = _table(other, "SELECT lat, lon FROM raw_fix LIMIT 100")
    assert not hashes & set(_table(store, "SELECT content_hash FROM raw_batch")
                            .column(0).to_pylist())
    assert not fixes.equals(_table(store, "SELECT lat, lon FROM raw_fix LIMIT 100"))


def test_a_device_does_not_depend_on_how_many_are_simulated(sim: Sim, tmp_path: Path) -> None:
    store, _ = sim
    with Store.create(tmp_path / "fewer") as fewer:
        _simulate(fewer, devices=2)
        few = _raw(fewer)
    # the first two devices are simulated (and stored) first, so even batch_no agrees
    many = _raw(store, "device_id IN ('sim-default-s5-0000', 'sim-default-s5-0001')")
    for name, table in many.items():
        assert table.equals(few[name]), name


def test_default_output_is_valid_raw_input(sim: Sim) -> None:
    store, summary = sim
    counts = raw_counts(store)
    assert counts["quarantined"] == 0
    assert counts["devices"] == DEVICES
    assert {k: counts["events"][k] for k in summary.events} == summary.events
    per_day = summary.events["fix"] / (DEVICES * DAYS)
    assert 500 < per_day < 10_000
    assert summary.events["activity"] > 0
    assert summary.events["vehicle_link"] > 0
    assert len(summary.describe().splitlines()) in (2, 3, 4)


@pytest.mark.parametrize("which", ["sim", "shifted"])
def test_every_parking_event_ends_a_car_leg_where_the_car_stands(
        which: str, request: pytest.FixtureRequest) -> None:
    store, summary = request.getfixturevalue(which)
    rows = store.con.execute(f"""
        SELECT l.mode, p.parked_at_ms - l.end_ms, {_metres("p.lat", "p.lon", "l.end_lat",
                                                           "l.end_lon")}
        FROM truth.parking p LEFT JOIN truth.legs l USING (device_id, leg_no)""").fetchall()
    assert len(rows) == summary.parking_events >= 5
    assert {r[0] for r in rows} == {"car"}
    assert all(r[1] == 0 and r[2] < 3.0 for r in rows)
    # and every car leg ended in a parking event
    assert store.scalar("""SELECT count(*) FROM truth.legs l ANTI JOIN truth.parking p
                           USING (device_id, leg_no) WHERE l.mode = 'car'""") == 0


def test_taxis_drop_off_without_parking(shifted: Sim) -> None:
    store, _ = shifted
    assert store.scalar("SELECT count(*) FROM truth.legs WHERE mode = 'taxi'") > 0
    assert store.scalar("""
        SELECT count(*) FROM truth.legs l JOIN truth.parking p
        ON p.device_id = l.device_id AND abs(p.parked_at_ms - l.end_ms) < 60000
        WHERE l.mode = 'taxi'""") == 0


@pytest.mark.parametrize("which", ["sim", "shifted"])
def test_the_next_drive_starts_where_the_car_was_parked(
        which: str, request: pytest.FixtureRequest) -> None:
    store, _ = request.getfixturevalue(which)
    rows = store.con.execute(f"""
        SELECT p.left_at_ms, p.parked_at_ms,
               (SELECT min(start_ms) FROM truth.legs n
                WHERE n.device_id = p.device_id AND n.mode = 'car' AND n.leg_no > p.leg_no),
               (SELECT {_metres("p.lat", "p.lon", "n.start_lat", "n.start_lon")}
                FROM truth.legs n WHERE n.device_id = p.device_id AND n.mode = 'car'
                AND n.leg_no > p.leg_no ORDER BY n.leg_no LIMIT 1)
        FROM truth.parking p""").fetchall()
    moved = [r for r in rows if r[0] is not None]
    assert moved
    assert all(left > parked and left == next_start and dist < 0.01
               for left, parked, next_start, dist in moved)
    assert all(r[2] is None for r in rows if r[0] is None)  # still parked at the end


def test_legs_follow_each_other_and_use_the_mode_vocabulary(sim: Sim) -> None:
    legs = _table(sim[0], "SELECT * FROM truth.legs ORDER BY device_id, leg_no")
    assert set(legs.column("mode").to_pylist()) <= set(MODES)
    assert {"walk", "car", "bus"} <= set(legs.column("mode").to_pylist())
    dev = np.asarray(legs.column("device_id").to_pylist())
    start, end = np.asarray(legs.column("start_ms")), np.asarray(legs.column("end_ms"))
    same = dev[1:] == dev[:-1]
    assert np.all(end >= start)
    assert np.all(start[1:][same] >= end[:-1][same])


def test_labels_follow_label_share(tmp_path: Path) -> None:
    with Store.create(tmp_path / "all") as every, Store.create(tmp_path / "none") as none:
        s_all = simulate(every, devices=2, days=2, seed=9, label_share=1.0)
        s_none = simulate(none, devices=2, days=2, seed=9, label_share=0.0)
        assert s_none.events["label"] == 0
        assert s_all.events["label"] > 0
        # each label names the mode of the true leg it overlaps most
        wrong = every.scalar("""
            WITH o AS (SELECT lb.start_ms s, lb.mode said, l.mode truth,
                              least(lb.end_ms, l.end_ms) - greatest(lb.start_ms, l.start_ms) ov
                       FROM raw_label lb JOIN truth.legs l USING (device_id))
            SELECT count(*) FROM (SELECT s, arg_max(truth, ov) t, any_value(said) said
                                  FROM o GROUP BY s) WHERE t <> said""")
        assert wrong == 0
        # labels come in their own batches, and change nothing else
        assert every.scalar("""SELECT count(*) FROM raw_batch b JOIN raw_label l
                               USING (device_id, batch_no) WHERE b.batch_id NOT LIKE '%label%'
                               """) == 0
        sensor = "SELECT content_hash FROM raw_batch WHERE batch_id NOT LIKE '%label%' ORDER BY 1"
        assert _table(every, sensor).equals(_table(none, sensor))


def test_transport_faults_are_there(sim: Sim) -> None:
    store, summary = sim
    assert summary.duplicate_sends > 0
    assert summary.batches_sent - summary.batches_stored == summary.duplicate_sends
    assert store.scalar("""SELECT count(*) FROM (SELECT device_id, t_ms FROM raw_fix
                           GROUP BY ALL HAVING count(DISTINCT batch_no) > 1)""") > 0
    # a batch holding later events arrived before one holding earlier events
    late = store.scalar("""
        WITH b AS (SELECT device_id, batch_no, min(t_ms) lo, max(t_ms) hi FROM raw_fix
                   GROUP BY ALL)
        SELECT count(*) FROM b x JOIN b y USING (device_id)
        WHERE x.batch_no < y.batch_no AND x.lo > y.hi""")
    assert late > 0


def test_simulating_again_stores_nothing_new(tmp_path: Path) -> None:
    with Store.create(tmp_path / "s") as store:
        first = simulate(store, devices=1, days=1, seed=2)
        truth = _raw(store)
        again = simulate(store, devices=1, days=1, seed=2)
        assert again.batches_stored == 0 < first.batches_stored
        for name, table in _raw(store).items():
            assert table.equals(truth[name]), name


def test_shifted_is_harder_than_default(sim: Sim, shifted: Sim) -> None:
    base, hard = sim[0], shifted[0]
    share = "SELECT avg((mode = 'taxi')::INT) FROM truth.legs WHERE mode IN ('taxi', 'bus')"
    assert hard.scalar(share) > base.scalar(share)
    assert hard.scalar("SELECT count(*) FROM raw_vehicle_link") == 0
    # sparser phones: fewer fixes per minute travelled
    rate = """SELECT (SELECT count(*) FROM raw_fix) /
                     (SELECT sum(end_ms - start_ms) / 60000 FROM truth.legs)"""
    assert hard.scalar(rate) < base.scalar(rate)


def test_unknown_scenario_is_refused_with_the_known_names(store: Store) -> None:
    assert "default" in SCENARIOS
    assert "shifted" in SCENARIOS
    with pytest.raises(ValueError, match="default, shifted"):
        simulate(store, scenario="rush")
    with pytest.raises(ValueError, match="label_share"):
        simulate(store, label_share=1.5)
