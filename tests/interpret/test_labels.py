"""Leg-end labels come from raw statements and agree with what really happened."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.labels import leg_end_labels
from parkloop.raw.events import parse_events
from parkloop.raw.log import store_batch
from parkloop.simulate import simulate
from parkloop.store import Store


def test_simulated_labels_agree_with_ground_truth(tmp_path: Path) -> None:
    with Store.create(tmp_path / "s") as store:
        simulate(store, devices=4, days=4, seed=5, label_share=1.0)
        rules = load_rules("v1")
        build(store, rules)
        labels = leg_end_labels(store, rules.identity)
        assert labels.num_rows > 10
        assert set(labels.column("source").to_pylist()) <= {"label", "inside"}
        positives = labels.filter(labels.column("parked"))
        assert positives.num_rows > 0
        assert set(positives.column("mode").to_pylist()) == {"car"}
        # a positive leg end lies near a true parking event (ground truth, read here only)
        store.con.register("pos", positives)
        near = store.scalar("""
            SELECT avg(CASE WHEN EXISTS (
                SELECT 1 FROM truth.parking t WHERE t.device_id = p.device_id
                  AND abs(t.parked_at_ms - p.ended_ms) <= 300000) THEN 1 ELSE 0 END)
            FROM pos p""")
        assert near >= 0.9
        # each raw label event labels at most one leg end at its end
        at_end = labels.filter(pc.equal(labels.column("source"), "label"))
        keys = list(zip(at_end.column("batch_no").to_pylist(), at_end.column("seq").to_pylist(),
                        strict=True))
        assert len(keys) == len(set(keys))
        # leg ends inside a non-car span are negatives of that span's mode
        inside = labels.filter(pc.equal(labels.column("source"), "inside"))
        assert not any(inside.column("parked").to_pylist())
        assert "car" not in inside.column("mode").to_pylist()


def test_feedback_overrides_a_label_and_unlabelled_ends_stay_out(tmp_path: Path,
                                                                sim_store_path: Path) -> None:
    path = tmp_path / "s"
    shutil.copytree(sim_store_path, path)
    with Store.open(path) as store:
        rules = load_rules("v1")
        build(store, rules)
        before = leg_end_labels(store, rules.identity)
        end = store.con.execute(
            "SELECT device_id, ended_ms, lat, lon FROM facts_leg_end WHERE rules_version = ? "
            "ORDER BY device_id, ended_ms LIMIT 1", [rules.identity]).fetchall()[0]
        device, ended, lat, lon = end
        store_batch(store, parse_events(device, "feedback-1", [
            {"kind": "feedback", "t": ended + 3_600_000, "parked_at": ended + 20_000,
             "lat": lat, "lon": lon, "parked": False}]))
        after = leg_end_labels(store, rules.identity)
    row = after.filter(pc.and_(pc.equal(after.column("device_id"), device),
                               pc.equal(after.column("ended_ms"), ended))).to_pylist()
    assert row == [{"device_id": device, "ended_ms": ended, "parked": False, "mode": "feedback",
                    "source": "feedback", "batch_no": row[0]["batch_no"], "seq": 0}]
    n_ends = len({(r["device_id"], r["ended_ms"]) for r in before.to_pylist()})
    assert after.num_rows in (n_ends, n_ends + 1)
