"""Simulated people who use the app while their phones stream: feedback end to end against a
real server, checked against the simulator's ground truth."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow as pa
import pytest
from tests.conftest import run_cli
from tests.serve.conftest import ADMIN_TOKEN, THRESHOLDS, Server, registry_template  # noqa: F401

from parkloop.facts.geo import haversine_m
from parkloop.interpret.labels import MATCH_M, MATCH_S
from parkloop.simulate import truth
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.feedback import MISSED_AFTER_S, gives_feedback
from parkloop.simulate.scenarios import scenario
from parkloop.simulate.stream import StreamSummary, batch_events, stream
from parkloop.simulate.world import make_world
from parkloop.store import Store

SEED, DEVICES, DAYS, START = 5, 2, 2, date(2025, 3, 3)


def true_parking(seed: int, devices: int, days: int) -> dict[str, pa.Table]:
    """Each simulated device's ``truth.parking`` rows (what ``parkloop simulate`` writes)."""
    sc = scenario("default")
    world = make_world(np.random.default_rng(np.random.SeedSequence([seed, WORLD_STREAM])))
    runs = [simulate_device(world, sc, seed, i, days, START, 0.0) for i in range(devices)]
    return {r.device_id: truth.tables(world, r, sc.name, seed)["parking"] for r in runs}


@dataclass(frozen=True)
class Fed:
    first: StreamSummary
    again: StreamSummary
    feedback: list[dict[str, Any]]
    """raw_feedback rows with their batch id and the newest fix sent before each"""


@pytest.fixture(scope="module")
def fed(tmp_path_factory: pytest.TempPathFactory,
        registry_template: Path) -> Fed:  # noqa: F811 (a fixture, imported above)
    """Two phones x two days streamed twice to a fresh server serving a rule model (version
    1: p85 speed >= 10 m/s), all their people giving feedback; what the store then holds."""
    assert THRESHOLDS["1"] == 10.0
    store = tmp_path_factory.mktemp("fed") / "store"
    shutil.copytree(registry_template, store)
    server = Server(store).wait_ready()
    try:
        kw: dict[str, Any] = dict(devices=DEVICES, days=DAYS, seed=SEED, label_share=0.0,
                                  start=START, feedback_share=1.0)
        first = stream(server.url, ADMIN_TOKEN, **kw)
        again = stream(server.url, ADMIN_TOKEN, **kw)
    finally:
        server.stop()
    with Store.open(store, read_only=True) as s:
        rows = s.con.sql("""
            SELECT f.device_id, b.batch_id, f.batch_no, f.parked_at_ms, f.lat, f.lon, f.parked,
                   f.model_version, f.rules_version,
                   (SELECT max(x.t_ms) FROM raw_fix x
                    WHERE x.device_id = f.device_id AND x.batch_no < f.batch_no) AS sent_until_ms
            FROM raw_feedback f JOIN raw_batch b USING (device_id, batch_no)
            ORDER BY f.batch_no""").to_arrow_table().to_pylist()
    return Fed(first, again, rows)


def test_feedback_is_stored_as_counted(fed: Fed) -> None:
    s = fed.first
    assert s.feedback_devices == DEVICES
    assert s.car_asks > 0
    assert s.feedback_yes > 0
    assert s.feedback_no + s.feedback_missed > 0
    rows = fed.feedback
    assert len(rows) == s.feedback_yes + s.feedback_no + s.feedback_missed
    kinds = [r["batch_id"].rsplit("-", 1)[1] for r in rows]
    assert (kinds.count("y"), kinds.count("n"), kinds.count("missed")) == (
        s.feedback_yes, s.feedback_no, s.feedback_missed)
    for r, kind in zip(rows, kinds, strict=True):
        assert r["parked"] == (kind != "n")
        assert r["batch_id"] == f"fb-{r['parked_at_ms']}-{kind}"
        assert (r["model_version"], r["rules_version"][:3]) == ("1", "v1@")


def test_feedback_tells_the_truth_and_never_the_future(fed: Fed) -> None:
    parking = true_parking(SEED, DEVICES, DAYS)
    for r in fed.feedback:
        true = parking[r["device_id"]]
        near = (np.abs(np.asarray(true.column("parked_at_ms")) - r["parked_at_ms"])
                <= MATCH_S * 1000) & (haversine_m(np.asarray(true.column("lat")),
                                                  np.asarray(true.column("lon")),
                                                  r["lat"], r["lon"]) <= MATCH_M)
        assert bool(near.any()) == r["parked"], r
        # said only about times the phone had sent fixes for (missed: 15 min later)
        wait = MISSED_AFTER_S * 1000 if r["batch_id"].endswith("missed") else 0
        assert r["sent_until_ms"] is not None
        assert r["parked_at_ms"] + wait <= r["sent_until_ms"], r
    missed = [r for r in fed.feedback if r["batch_id"].endswith("missed")]
    for r in missed:  # at a true parking: its very time and place
        true = parking[r["device_id"]]
        assert r["parked_at_ms"] in set(true.column("parked_at_ms").to_pylist())


def test_streaming_again_says_nothing_twice(fed: Fed) -> None:
    s = fed.again
    assert (s.stored, s.duplicates, s.batches) == (0, fed.first.batches, fed.first.batches)
    assert (s.car_asks, s.feedback_yes, s.feedback_no, s.feedback_missed) == (0, 0, 0, 0)
    first = fed.first
    assert len(fed.feedback) == first.feedback_yes + first.feedback_no + first.feedback_missed
    assert "said" in first.describe()
    assert "said" not in StreamSummary(1, 1, 1, 1, 0, 0, 1.0).describe()


# --- without a server: what is sent ------------------------------------------------------

class FakeServer:
    """Takes every batch as new, answers "parked" somewhere far away, records requests."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.batch_no = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, request.url.path, body))
        if request.url.path == "/readyz":
            return httpx.Response(200, json={"ready": True, "raw_watermark": self.batch_no})
        if request.method == "GET":
            return httpx.Response(200, json={
                "status": "parked", "parked": True, "lat": 0.0, "lon": 0.0,
                "parked_at": "2025-03-03T06:00:00.000Z", "model_version": "1",
                "rules_version": "v1@x"})
        self.batch_no += 1
        return httpx.Response(200, json={
            "status": "stored", "batch_no": self.batch_no, "n_events": 1, "n_quarantined": 0})

    def sent(self, what: str) -> list[tuple[str, Any]]:
        return [(path.split("/")[3], body) for method, path, body in self.requests
                if method == "POST" and path.endswith(what)]


def fake_stream(share: float, devices: int = 3) -> tuple[FakeServer, StreamSummary]:
    fake = FakeServer()
    summary = stream("http://fake", "token", devices=devices, days=1, seed=SEED,
                     start=START, feedback_share=share, concurrency=1,
                     transport=httpx.MockTransport(fake))
    return fake, summary


@pytest.fixture(scope="module")
def expected_batches() -> list[tuple[str, Any]]:
    """The batch POSTs of 3 phones x 1 day, each in its phone's order, as streamed before
    feedback existed."""
    sc = scenario("default")
    world = make_world(np.random.default_rng(np.random.SeedSequence([SEED, WORLD_STREAM])))
    runs = [simulate_device(world, sc, SEED, i, 1, START, 0.3) for i in range(3)]
    return [(r.device_id, {"batch_id": f"{START:%Y%m%d}." + b.batch_id,
                           "events": batch_events(b)}) for r in runs for b in r.sent.batches]


def by_device(sent: list[tuple[str, Any]]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {}
    for device, body in sent:
        out.setdefault(device, []).append(body)
    return out


def test_without_feedback_share_the_stream_is_as_before(
        expected_batches: list[tuple[str, Any]]) -> None:
    fake, summary = fake_stream(0.0)
    assert by_device(fake.sent("/events")) == by_device(expected_batches)
    assert not fake.sent("/feedback")
    assert not [p for m, p, _ in fake.requests if m == "GET" and p.endswith("/car")]
    assert (summary.feedback_devices, summary.car_asks, summary.feedback_no) == (0, 0, 0)


def test_people_giving_feedback_do_not_change_the_batches(
        expected_batches: list[tuple[str, Any]]) -> None:
    fake, summary = fake_stream(1.0)
    assert by_device(fake.sent("/events")) == by_device(expected_batches)
    assert summary.feedback_devices == 3
    assert summary.car_asks > summary.batches
    # the far-away answer is denied once per person, and never confirmed
    said = fake.sent("/feedback")
    assert sorted(d for d, b in said if not b["parked"]) == sorted(by_device(expected_batches))
    assert (summary.feedback_no, summary.feedback_yes) == (3, 0)
    assert all(b["feedback_id"] == "fb-1740981600000-n" for d, b in said if not b["parked"])


def test_who_gives_feedback_depends_on_seed_and_index_only() -> None:
    share = [gives_feedback(SEED, i, 0.3) for i in range(200)]
    assert 0.2 < np.mean(share) < 0.4
    assert share[:10] == [gives_feedback(SEED, i, 0.3) for i in range(10)]
    assert [gives_feedback(SEED, i, 1.0) for i in range(50)] == [True] * 50
    assert [gives_feedback(SEED, i, 0.0) for i in range(50)] == [False] * 50


def test_feedback_share_needs_a_server(tmp_path: Path) -> None:
    proc = run_cli("simulate", "--feedback-share", "0.5", store=tmp_path / "s", check=False)
    assert proc.returncode == 2  # a usage error, as for the other options
    assert "--feedback-share" in proc.stderr
    assert "needs --to" in proc.stderr
    assert not (tmp_path / "s").exists()
