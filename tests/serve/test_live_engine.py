"""The live pipeline without HTTP: however the raw log is cut into catch-ups, every judged leg
end and every answer equals a batch build of the batches stored so far, scored in batch."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parkloop.facts.build import read_device
from parkloop.facts.pipeline import device_facts
from parkloop.facts.rules import load_rules
from parkloop.interpret.parking import car_answer
from parkloop.serve.live import Live, ServedModel
from parkloop.store import Store
from tests.serve.conftest import rule_model

RULES = load_rules("v1")
CHAMPION = ServedModel("7", rule_model(10.0))


def batch_view(store: Store, device: str, upto: int) -> tuple[list[dict[str, Any]], Any]:
    """(judged leg ends, answer) of a batch build of ``device``'s batches up to ``upto``."""
    fixes, signals = read_device(store, device, upto_batch=upto)
    facts = device_facts(device, fixes, signals, RULES).tables
    newest = int(fixes.t_ms.max())
    ends = facts["facts_leg_end"]
    ends = ends.filter(pa.array(np.asarray(ends.column("decided_ms")) <= newest))
    p = CHAMPION.model.predict(ends)
    judged = ends.select(["ended_ms", "lat", "lon"]).append_column(
        "p_parked", pa.array(p, pa.float64())).append_column(
        "parked", pa.array(p >= CHAMPION.model.threshold))
    legs = facts["facts_leg"]
    drives = legs.filter(pa.array(np.asarray(legs.column("mode")) == "vehicle")).select(
        ["started_ms", "start_lat", "start_lon"])
    return judged.to_pylist(), car_answer(device, judged, drives, CHAMPION.version,
                                          RULES.identity)


@pytest.fixture(scope="module")
def store(sim_store_path: Path) -> Any:
    with Store.open(sim_store_path, read_only=True) as s:
        yield s


@settings(max_examples=4, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cuts=st.lists(st.floats(0.05, 1.0), min_size=1, max_size=4))
def test_any_cutting_of_the_raw_log_gives_the_batch_answers(store: Store,
                                                            cuts: list[float]) -> None:
    last = int(store.scalar("SELECT max(batch_no) FROM raw_batch"))
    live = Live(RULES, CHAMPION)
    for upto in sorted({max(1, int(c * last)) for c in cuts}):
        live.catch_up(store.con, upto=upto)
        for device in live.devices():
            ends, answer = batch_view(store, device, upto)
            got = [{k: r[k] for k in ("ended_ms", "lat", "lon", "p_parked", "parked")}
                   for r in live.judged(device)]
            assert got == ends, (device, upto)
            served = orjson.loads(live.answers[device])
            assert (served["status"], served["lat"], served["lon"], served["p_parked"]) == (
                answer.status, answer.lat, answer.lon, answer.p_parked), (device, upto)


def test_a_new_champion_rejudges_everything_and_switches_every_answer(store: Store) -> None:
    live = Live(RULES, CHAMPION)
    live.catch_up(store.con)
    strict = ServedModel("8", rule_model(30.0))  # no leg end is that fast: nothing parked
    before = dict(live.answers)
    parked_before = sum(r["parked"] for d in live.devices() for r in live.judged(d))
    live.use(strict)
    assert set(live.answers) == set(before)
    for device, body in live.answers.items():
        answer = orjson.loads(body)
        assert answer["model_version"] == "8"
        assert answer["status"] == "unknown"
        assert all(not r["parked"] and r["model_version"] == "8"
                   for r in live.judged(device))
    assert parked_before > 0
    assert any(orjson.loads(b)["status"] != "unknown" for b in before.values())
