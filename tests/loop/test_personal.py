"""Through the product's own path: people the champion never saw say something (labels by
`parkloop import events`, feedback through the HTTP API), `parkloop loop run` takes it in, and
`parkloop export parked` answers their later trips knowing it; both exports, cold and warm, are
judged end to end on their later labelled segments: warm beats cold (on GeoLife:
bench/personal.py)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

from parkloop.interpret.endtoend import end_to_end
from parkloop.interpret.speaking import feedback, label_lines, read_parked
from parkloop.interpret.views import warm_cutoff
from parkloop.raw.log import store_batches
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.scenarios import scenario
from parkloop.simulate.world import make_world
from parkloop.store import Store
from tests.conftest import run_cli
from tests.loop.stores import DAYS, SHIFT_START
from tests.serve.conftest import Server


def simulate_only(store: Store, devices: list[str], label_share: float) -> None:
    """What ``simulate`` stores of the shifted scenario's week (seed 0) for ``devices`` alone
    (a device does not depend on how many are simulated): the held people, without
    simulating the others too."""
    sc = scenario("shifted")
    world = make_world(np.random.default_rng(np.random.SeedSequence([0, WORLD_STREAM])))
    for device in devices:
        index = int(device.rsplit("-", 1)[1])
        run = simulate_device(world, sc, 0, index, DAYS, SHIFT_START, label_share)
        assert run.device_id == device
        store_batches(store, run.sent.batches)


def said_before(store: Path, held: list[str], cutoff: dict[str, int]) -> np.ndarray:
    """For each leg end of ``held`` after their cutoff: how many statements came before it."""
    with Store.open(store, read_only=True) as s:
        ends = s.con.execute(
            "SELECT device_id, ended_ms, said_car_before + said_other_before AS said "
            "FROM facts_leg_end WHERE list_contains($d, device_id)", {"d": held}).fetchall()
    return np.array([n for d, t, n in ends if t > cutoff[d]], np.int64)


def test_statements_reach_the_answers_through_the_product(shifted_store: Path,
                                                          tmp_path: Path) -> None:
    """The champion was trained on the default scenario's people; the shifted scenario's
    people who never labelled are held out (the others' labels are in the store already)."""
    store = shifted_store
    with Store.open(store, read_only=True) as s:
        held = [d for (d,) in s.con.execute(
            "SELECT device_id FROM truth.devices WHERE owns_car AND NOT labeller "
            "AND scenario = 'shifted' ORDER BY device_id").fetchall()]
    assert len(held) >= 2, "the shifted people include car owners who never labelled"
    # what they would have said: the same people, everyone labelling (only labels differ)
    with Store.create(tmp_path / "said") as said:
        simulate_only(said, held, label_share=1.0)
        labels = said.con.execute(
            "SELECT device_id, t_ms, start_ms, end_ms, mode FROM raw_label "
            "WHERE list_contains($d, device_id) ORDER BY device_id, end_ms",
            {"d": held}).fetchall()
    cutoff = {d: warm_cutoff(np.array([e for x, _, _, e, _ in labels if x == d], np.int64))
              for d in held}
    early = [row for row in labels if row[3] <= cutoff[row[0]]]
    later = [row for row in labels if row[3] > cutoff[row[0]]]
    assert early
    assert later

    run_cli("export", "parked", "--out", tmp_path / "cold.csv", store=store)
    cold = read_parked(tmp_path / "cold.csv")
    assert len(said_before(store, held, cutoff))
    assert not said_before(store, held, cutoff).any()  # strangers

    (tmp_path / "early.jsonl").write_text(label_lines(early, "early"))
    run_cli("import", "events", tmp_path / "early.jsonl", store=store)
    with Store.open(store, read_only=True) as s:
        stored = s.con.execute("SELECT count(*) FROM raw_label WHERE list_contains($d, "
                               "device_id)", {"d": held}).fetchall()
    assert stored == [(len(early),)]
    server = Server(store).wait_ready()
    sent = 0
    try:
        for device in held:
            token = server.token(device)
            for body in feedback(cold, early, device, cutoff[device]):  # their early answers
                r = httpx.post(f"{server.url}/v1/devices/{device}/feedback", headers=token,
                               json=body, timeout=30)
                assert r.status_code in (200, 201), r.text
                sent += 1
    finally:
        server.stop()
    assert sent
    with Store.open(store, read_only=True) as s:
        stored = s.con.execute("SELECT count(*) FROM raw_feedback WHERE list_contains($d, "
                               "device_id)", {"d": held}).fetchall()
    assert stored == [(sent,)]

    run_cli("loop", "run", store=store)
    assert (said_before(store, held, cutoff) > 0).all()  # the facts know what they said
    run_cli("export", "parked", "--out", tmp_path / "warm.csv", store=store)
    warm = read_parked(tmp_path / "warm.csv")

    # the judge: their later labels, which no model and no fact had seen
    (tmp_path / "later.jsonl").write_text(label_lines(later, "later"))
    run_cli("import", "events", tmp_path / "later.jsonl", store=store)
    with Store.open(store, read_only=True) as s:
        before = end_to_end(s, cold, after=cutoff)
        after = end_to_end(s, warm, after=cutoff)
    print(f"cold F1 {before['f1']:.3f} (P {before['precision']:.3f}, R {before['recall']:.3f});"
          f" warm F1 {after['f1']:.3f} (P {after['precision']:.3f}, R {after['recall']:.3f})")
    assert before["car_ends"] == after["car_ends"] > 0
    assert after["f1"] > before["f1"]  # what they said made their answers better
