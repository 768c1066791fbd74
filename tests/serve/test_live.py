"""The live path through a real server: what it answers equals ``facts build`` + batch scoring
of the same raw events, a restart loses nothing, and a batch that closes a parking leg changes
the car answer within a second (the live path in two pipeline worker processes; the restart
in one thread)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.parking import car_answer
from parkloop.simulate.stream import stream
from parkloop.store import Store
from tests.serve.conftest import ADMIN_TOKEN, THRESHOLDS, Server, rule_model

pytestmark = pytest.mark.server

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
HOME = (48.137, 11.575)
M_PER_DEG = 111_195.0


def judged(server: Server, device: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v1/devices/{device}/leg-ends", params={"limit": 1000},
                  headers=server.admin, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json()["rows"])


def car(server: Server, device: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/v1/devices/{device}/car", headers=headers or server.admin,
                  timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


def batch_answers(store_path: Path, devices: list[str]) -> dict[str, tuple[Any, Any]]:
    """Per device: (judged leg ends, car answer) from a batch build of the store and the
    champion's batch scoring, over the leg ends decided by the device's newest fix."""
    rules = load_rules("v1")
    model = rule_model(THRESHOLDS["1"])
    out = {}
    with Store.open(store_path) as store:
        build(store, rules)
        for device in devices:
            newest = store.scalar("SELECT max(t_ms) FROM raw_fix WHERE device_id = ?", [device])
            ends = store.con.sql(
                "SELECT * FROM facts_leg_end WHERE device_id = $d AND decided_ms <= $n "
                "ORDER BY ended_ms", params={"d": device, "n": newest}).to_arrow_table()
            p = model.predict(ends)
            judged_ends = ends.select(["ended_ms", "lat", "lon"]).append_column(
                "p_parked", pa.array(p)).append_column("parked", pa.array(p >= model.threshold))
            legs = store.con.sql(
                "SELECT started_ms, start_lat, start_lon FROM facts_leg WHERE device_id = $d "
                "AND mode = 'vehicle' ORDER BY started_ms", params={"d": device}
            ).to_arrow_table()
            out[device] = (judged_ends.to_pylist(),
                           car_answer(device, judged_ends, legs, "1", rules.identity))
    return out


@pytest.fixture(scope="module")
def streamed(registry_template: Path, tmp_path_factory: pytest.TempPathFactory
             ) -> tuple[Path, dict[str, list[dict[str, Any]]], dict[str, dict[str, Any]]]:
    """Three simulated phones streamed into a fresh server: the store, and what the live path
    answered (judged leg ends and car answers) once it had taken everything in."""
    import shutil

    store = tmp_path_factory.mktemp("streamed") / "store"
    shutil.copytree(registry_template, store)
    server = Server(store, workers=2).wait_ready()
    try:
        stream(server.url, ADMIN_TOKEN, devices=3, days=2, seed=5, label_share=0.0)
        server.wait_caught_up()
        devices = [f"sim-default-s5-{i:04d}" for i in range(3)]
        live_ends = {d: judged(server, d) for d in devices}
        answers = {d: car(server, d) for d in devices}
    finally:
        server.stop()
    return store, live_ends, answers


def test_live_answers_equal_batch_build_and_scoring(streamed: Any) -> None:
    store, live_ends, answers = streamed
    batch = batch_answers(store, sorted(live_ends))
    assert sum(len(v) for v in live_ends.values()) > 10  # the phones drove
    for device, (ends, answer) in batch.items():
        live = [{k: r[k] for k in ("ended_ms", "lat", "lon", "p_parked", "parked")}
                for r in live_ends[device]]
        assert live == ends, device
        got = answers[device]
        assert (got["status"], got["lat"], got["lon"], got["p_parked"]) == (
            answer.status, answer.lat, answer.lon, answer.p_parked)
        assert (got["model_version"], got["rules_version"]) == ("1", answer.rules_version)
    assert any(a["status"] == "parked" for a in answers.values())


def test_a_restart_loses_nothing(streamed: Any) -> None:
    """The restarted server runs the pipeline in a thread where the first ran two worker
    processes: the answers depend on neither the shards nor the process model."""
    store, live_ends, answers = streamed
    server = Server(store).wait_ready()
    try:
        for device, ends in live_ends.items():
            assert judged(server, device) == ends
            again = car(server, device)
            assert {k: v for k, v in again.items() if k != "known_since"} == \
                {k: v for k, v in answers[device].items() if k != "known_since"}
    finally:
        server.stop()


def drive_then_park(t0: int, every_s: int = 5) -> list[dict[str, Any]]:
    """A phone at home 10 min, driving north at 14 m/s for 15 min, then standing 30 min where
    it parked: fixes every ``every_s`` seconds."""
    events, lat = [], HOME[0]
    rng = np.random.default_rng(0)
    for s in range(0, 55 * 60, every_s):
        if 10 * 60 <= s < 25 * 60:
            lat += 14.0 * every_s / M_PER_DEG
        jitter = rng.normal(0, 3.0, 2) / M_PER_DEG
        events.append({"kind": "fix", "t": t0 + s * 1000, "lat": lat + jitter[0],
                       "lon": HOME[1] + jitter[1], "accuracy_m": 5.0})
    return events


def test_a_batch_closing_a_parking_leg_changes_the_answer_within_a_second(
        empty_store: Path) -> None:
    server = Server(empty_store, workers=2).wait_ready()
    try:
        auth = server.token("phone-1")
        events = drive_then_park(T0)
        parked_at = T0 + 25 * 60 * 1000
        decided = parked_at + 10 * 60 * 1000  # the rules' features.wait_s
        before = [e for e in events if e["t"] < decided - 60_000]
        closing = [e for e in events if decided - 60_000 <= e["t"] <= decided + 30_000]
        for i in range(0, len(before), 60):
            r = httpx.post(f"{server.url}/v1/devices/phone-1/events", headers=auth, timeout=10,
                           json={"batch_id": f"b{i}", "events": before[i:i + 60]})
            assert r.status_code == 200, r.text
        server.wait_caught_up()
        assert car(server, "phone-1", auth)["status"] == "unknown"  # not decided yet

        r = httpx.post(f"{server.url}/v1/devices/phone-1/events", headers=auth, timeout=10,
                       json={"batch_id": "closing", "events": closing})
        assert r.status_code == 200, r.text
        acked = time.monotonic()
        while (answer := car(server, "phone-1", auth))["status"] != "parked":
            assert time.monotonic() - acked < 1.0, "the answer did not change within 1 s"
            time.sleep(0.01)
        assert abs(answer["lat"] - (HOME[0] + 14.0 * 15 * 60 / M_PER_DEG)) < 0.001
        ended = np.datetime64(answer["parked_at"].rstrip("Z"), "ms").astype(np.int64)
        assert abs(int(ended) - parked_at) < 60_000
        assert (answer["model_version"], answer["rules_version"]) == (
            "1", load_rules("v1").identity)
    finally:
        server.stop()
