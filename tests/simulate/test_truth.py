"""Ground truth: its tables' shape, and the rule that no pipeline code reads it."""

from __future__ import annotations

import re
from pathlib import Path

from parkloop.simulate import simulate
from parkloop.store import Store

SRC = Path(__file__).resolve().parents[2] / "src" / "parkloop"
# Packages allowed to touch `truth`: the simulator that writes it. An evaluation package would
# be added here; facts, interpret, serve and loop never.
ALLOWED = {"simulate"}


def test_no_pipeline_code_reads_truth() -> None:
    pattern = re.compile(r"\btruth\s*\.\s*(legs|parking|devices)\b|parkloop\.simulate\.truth\b|"
                         r"\bFROM\s+truth\b|\bJOIN\s+truth\b", re.IGNORECASE)
    offenders = [f"{p.relative_to(SRC)}: {m.group(0)}" for p in SRC.rglob("*.py")
                 if p.relative_to(SRC).parts[0] not in ALLOWED
                 for m in pattern.finditer(p.read_text())]
    assert offenders == []


def test_truth_tables_have_the_documented_columns(store: Store) -> None:
    simulate(store, devices=1, days=1, seed=4)
    cols = {t: [(r[0], r[1]) for r in store.con.execute(f"DESCRIBE truth.{t}").fetchall()]
            for t in ("legs", "parking", "devices")}
    assert cols["legs"] == [
        ("device_id", "VARCHAR"), ("leg_no", "INTEGER"), ("mode", "VARCHAR"),
        ("start_ms", "BIGINT"), ("end_ms", "BIGINT"), ("start_lat", "DOUBLE"),
        ("start_lon", "DOUBLE"), ("end_lat", "DOUBLE"), ("end_lon", "DOUBLE")]
    assert cols["parking"] == [
        ("device_id", "VARCHAR"), ("parked_at_ms", "BIGINT"), ("lat", "DOUBLE"),
        ("lon", "DOUBLE"), ("left_at_ms", "BIGINT"), ("leg_no", "INTEGER")]
    assert [c for c, _ in cols["devices"]][:4] == ["device_id", "scenario", "seed",
                                                   "device_index"]
    assert store.scalar("SELECT count(*) FROM truth.devices") == 1
    # truth is apart from raw: nothing in the main schema mentions it
    assert store.scalar("""SELECT count(*) FROM information_schema.tables
                           WHERE table_schema = 'main' AND table_name LIKE '%truth%'""") == 0
