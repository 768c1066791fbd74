"""Through the product's own path: people the champion never saw say something (labels by
`parkloop import events`, feedback through the HTTP API), `parkloop loop run` takes it in, and
`parkloop export parked` answers their later trips knowing it; both exports, cold and warm, are
judged end to end on their later labelled segments: warm beats cold (on GeoLife:
bench/personal.py)."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from parkloop.interpret.endtoend import end_to_end
from parkloop.interpret.views import warm_cutoff
from parkloop.simulate import simulate
from parkloop.store import Store
from tests.conftest import run_cli
from tests.loop.stores import DAYS, DEVICES, SHIFT_START
from tests.serve.conftest import Server

NEAR_MS = 300_000
Label = tuple[str, int, int, int, str]
"""device, said at, start, end, mode (ms)"""


def exported(path: Path) -> pa.Table:
    """`parkloop export parked`'s rows as events: device_id, t_ms, lat, lon."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return pa.table({
        "device_id": pa.array([r["device_id"] for r in rows], pa.string()),
        "t_ms": pa.array([int(datetime.fromisoformat(r["parked_at"]).timestamp() * 1000)
                          for r in rows], pa.int64()),
        "lat": pa.array([float(r["lat"]) for r in rows], pa.float64()),
        "lon": pa.array([float(r["lon"]) for r in rows], pa.float64())})


def said_parked(early: list[Label], device: str, t_ms: int) -> bool | None:
    """What the person answers about a parking answer at ``t_ms``, from what they labelled:
    yes near a car segment's end, no near another mode's end or inside its span, None where
    no label of theirs reaches."""
    for d, _, _, end, mode in early:
        if d == device and abs(end - t_ms) <= NEAR_MS:
            return mode == "car"
    if any(d == device and start < t_ms < end and mode != "car"
           for d, _, start, end, mode in early):
        return False
    return None


def label_lines(labels: list[Label], part: str) -> str:
    """Label events (device, said at, start, end, mode) as JSON Lines batches, one a device."""
    out = []
    for device in sorted({d for d, *_ in labels}):
        events = [{"kind": "label", "t": t, "start": s, "end": e, "mode": m}
                  for d, t, s, e, m in labels if d == device]
        out.append(json.dumps({"device_id": device, "batch_id": f"labels-{part}",
                               "events": events}))
    return "\n".join(out) + "\n"


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
        simulate(said, devices=DEVICES, days=DAYS, label_share=1.0, scenario="shifted",
                 start=SHIFT_START)
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
    cold = exported(tmp_path / "cold.csv")
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
            for i in range(cold.num_rows):  # their word on their early answers
                row = {k: cold.column(k)[i].as_py() for k in cold.column_names}
                if row["device_id"] != device or row["t_ms"] > cutoff[device]:
                    continue
                right = said_parked(early, device, row["t_ms"])
                if right is None:
                    continue  # in time nobody labelled: the person's word is not known
                r = httpx.post(f"{server.url}/v1/devices/{device}/feedback", headers=token,
                               json={"parked_at": row["t_ms"], "lat": row["lat"],
                                     "lon": row["lon"], "parked": right,
                                     "t": row["t_ms"] + 3_600_000}, timeout=30)
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
    warm = exported(tmp_path / "warm.csv")

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
