"""The call policy: careful with strangers, never a parking where the ride went on, and an
answer that says why it abstained; the cold and warm views it is measured on."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.facts.tables import SCHEMAS
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.model import CALLS, ParkedModel
from parkloop.interpret.parking import car_answer
from parkloop.interpret.spec import Policy, load_spec
from parkloop.interpret.views import person_views
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

MODEL = ParkedModel(ThresholdRule(0, 0.5), ("p",), 0.5, "rule", "test@0", "v1@0",
                    Policy(stranger_odds=9.0, ride_on_away_m=100.0))


def ends(p: list[float], said: list[int], drives_on: list[bool] | None = None,
         away: list[float] | None = None) -> pa.Table:
    n = len(p)
    return pa.table({"p": p, "said_car_before": said, "said_other_before": [0] * n,
                     "drives_on": drives_on or [False] * n, "max_away_m": away or [500.0] * n})


def test_a_stranger_needs_strong_evidence_a_known_person_the_threshold() -> None:
    table = ends([0.6, 0.95, 0.6], said=[0, 0, 3])
    why = MODEL.reasons(table, np.array([0.6, 0.95, 0.6]))
    assert [CALLS[w] for w in why] == ["stranger", "parked", "parked"]


def test_a_ride_that_went_on_with_the_phone_aboard_is_no_parking() -> None:
    table = ends([0.8, 0.8], said=[2, 2], drives_on=[True, True], away=[40.0, 600.0])
    assert MODEL.call(table, np.array([0.8, 0.8])).tolist() == [False, True]


def test_the_answer_says_why_it_abstained() -> None:
    table = ends([0.6], said=[0])
    why = MODEL.reasons(table, np.array([0.6]))
    judged = pa.table({"ended_ms": [1_000], "lat": [40.0], "lon": [116.3], "p_parked": [0.6],
                       "parked": [False], "why": pa.array(why, pa.int64())})
    drives = pa.table({"started_ms": pa.array([], pa.int64()),
                       "start_lat": pa.array([], pa.float64()),
                       "start_lon": pa.array([], pa.float64())})
    answer = car_answer("d", judged, drives, "1", "v1@0")
    assert answer.status == "unknown"
    assert answer.reason.startswith("abstained")


def test_the_shipped_spec_is_careful_with_strangers() -> None:
    spec = load_spec("parked")
    assert spec.policy.stranger_odds > 1
    assert spec.policy.ride_on_away_m is not None
    assert spec.train.unsaid_copies


def test_cold_knows_nothing_said_and_warm_only_the_first_segments(
        tmp_path: Path, geolife_mini: Path) -> None:
    with Store.create(tmp_path / "s") as store:
        import_geolife(store, geolife_mini)
        rules = load_rules("v1")
        build(store, rules)
        labelled = [d for (d,) in store.con.execute(
            "SELECT DISTINCT device_id FROM raw_label ORDER BY 1").fetchall()]
        views = person_views(store, rules, labelled)
        stored = store.con.sql("SELECT device_id, ended_ms, said_car_before + said_other_before"
                               " AS said FROM facts_leg_end").fetchall()
        n_labels = dict(store.con.execute(
            "SELECT device_id, count(*) FROM raw_label WHERE mode NOT IN ('walk', 'run') "
            "GROUP BY 1").fetchall())
    assert any(said for *_, said in stored), "the stored facts know what people said"
    for device, view in views.items():
        cold = view.cold.to_pydict()
        assert set(cold["said_car_before"]) <= {0}
        assert set(cold["said_other_before"]) <= {0}
        warm = view.warm.to_pydict()
        assert all(t > view.warm_from_ms for t in warm["ended_ms"])
        said = np.add(warm["said_car_before"], warm["said_other_before"])
        assert said.max(initial=0) <= int(np.ceil(0.3 * n_labels.get(device, 0))) + 1
    assert set(SCHEMAS["facts_leg_end"].names) == set(next(iter(views.values())).cold.column_names)

