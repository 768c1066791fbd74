"""Leg-end labels come from raw statements and agree with what really happened."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow.compute as pc

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.labels import feedback_checks, leg_end_labels
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


def test_feedback_its_own_device_contradicts_is_left_out(tmp_path: Path,
                                                         sim_store_path: Path) -> None:
    """The poisoning guard: "I parked here" about a place 5 km from every fix the phone sent
    around that time, or about a time it sent no fix near, labels nothing; the same
    statement where the phone was does."""
    path = tmp_path / "s"
    shutil.copytree(sim_store_path, path)
    with Store.open(path) as store:
        rules = load_rules("v1")
        build(store, rules)
        device, ended, lat, lon = store.con.execute(
            "SELECT device_id, ended_ms, lat, lon FROM facts_leg_end WHERE rules_version = ? "
            "ORDER BY device_id, ended_ms LIMIT 1 OFFSET 3", [rules.identity]).fetchall()[0]
        first_fix = store.scalar("SELECT min(t_ms) FROM raw_fix WHERE device_id = ?", [device])
        said = {"kind": "feedback", "t": ended + 3_600_000, "parked": True}
        for batch_id, at, where in [
                ("far", ended, (lat + 0.045, lon)),  # 5 km north
                ("before-any-fix", first_fix - 86_400_000, (lat, lon)),
                ("true", ended, (lat, lon))]:
            store_batch(store, parse_events(device, batch_id, [
                {**said, "parked_at": at, "lat": where[0], "lon": where[1]}]))
        checks = feedback_checks(store).to_pylist()
        labels = leg_end_labels(store, rules.identity)
        batch_ids = dict(store.con.execute(
            "SELECT batch_no, batch_id FROM raw_batch WHERE device_id = ?", [device]).fetchall())
    verdicts = {batch_ids[c["batch_no"]]: c["verdict"] for c in checks}
    assert verdicts == {"far": "far_from_device", "before-any-fix": "no_fix_near",
                        "true": "ok"}
    from_feedback = labels.filter(pc.equal(labels.column("source"), "feedback")).to_pylist()
    assert [(batch_ids[r["batch_no"]], r["ended_ms"], r["parked"]) for r in from_feedback] == [
        ("true", ended, True)]


def test_no_device_holds_more_than_its_cap_of_training_rows() -> None:
    """One device flooding labels (500 of them) keeps only its latest 150, the spec's cap;
    the others keep all of theirs."""
    import numpy as np

    from parkloop.interpret.dataset import TrainingSet
    from parkloop.interpret.spec import load_spec
    from parkloop.interpret.train import usable_rows

    groups = np.array(["flood"] * 500 + ["a"] * 40 + ["b"] * 60, dtype=object)
    ended = np.r_[np.arange(500), np.arange(40), np.arange(60)].astype(np.int64)
    data = TrainingSet(np.zeros((600, 1)), np.zeros(600, bool), groups,
                       np.array(["car"] * 600, dtype=object), ("leg_duration_s",))
    spec = load_spec("parked")
    ok = usable_rows(spec, data, ended)
    assert spec.train.max_labels_per_device == 150
    assert (ok[:500].sum(), ok[500:].sum()) == (150, 100)
    assert ok[350:500].all()  # the latest
    # what a retrain knew when the device had said only its first 200: those, the latest
    # 150 of them, not none (its later ones were not said yet)
    known = np.ones(600, bool)
    known[200:500] = False
    early = usable_rows(spec, data, ended, known)
    assert early[50:200].all()
    assert early.sum() == 150 + 100
