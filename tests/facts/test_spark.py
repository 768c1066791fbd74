"""The Spark engine gives the embedded engine's facts, byte for byte (real PySpark, local)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.facts.spark import build_on_spark, export_raw
from parkloop.facts.tables import SCHEMAS, table_digest
from parkloop.store import Store
from tests.conftest import SPARK_MASTER, run_cli

pytestmark = pytest.mark.usefixtures("spark")
"""one Spark session for the run (tests/conftest.py), which the engine and the CLI find"""

RULES = load_rules("v1")


def digests(store: Store) -> dict[str, str]:
    """Each fact table of the rules version, in device and key order, as a digest."""
    return {name: table_digest(store.con.sql(
        f"SELECT * FROM {name} WHERE rules_version = $rv ORDER BY ALL",
        params={"rv": RULES.identity}).to_arrow_table()) for name in SCHEMAS}


def counts(store: Store) -> tuple[int, ...]:
    return tuple(store.con.execute(
        "SELECT n_devices, n_fixes, n_fixes_used, n_late FROM facts_build "
        "WHERE rules_version = ?", [RULES.identity]).fetchall()[0])


def test_geolife_mini_facts_are_byte_equal_on_spark(tmp_path: Path,
                                                     geolife_mini_store: Path) -> None:
    shutil.copytree(geolife_mini_store, tmp_path / "s")
    with Store.open(tmp_path / "s") as store:
        build(store, RULES)
        embedded, embedded_counts = digests(store), counts(store)
        # the raw events as a Parquet export (as on a cluster's storage), then Spark
        raw = export_raw(store, tmp_path / "lake")
        report = build_on_spark(store, RULES, master=SPARK_MASTER, raw=raw)
        assert report.engine == f"spark {SPARK_MASTER}"
        assert report.rows["facts_leg_end"] > 100
        assert digests(store) == embedded
        assert counts(store) == embedded_counts


def test_simulated_facts_are_byte_equal_through_the_cli(tmp_path: Path,
                                                         sim_store_path: Path) -> None:
    path = tmp_path / "s"
    shutil.copytree(sim_store_path, path)
    run_cli("facts", "build", store=path)
    with Store.open(path, read_only=True) as store:
        embedded = digests(store)
    out = run_cli("facts", "build", "--engine", "spark", "--spark-master", SPARK_MASTER,
                  "--json", store=path)
    report = json.loads(out.stdout)
    assert report["engine"] == f"spark {SPARK_MASTER}"
    assert report["rules_version"] == RULES.identity
    with Store.open(path, read_only=True) as store:
        assert digests(store) == embedded


def test_spark_options_need_the_spark_engine(tmp_path: Path, sim_store_path: Path) -> None:
    proc = run_cli("facts", "build", "--spark-master", SPARK_MASTER, store=sim_store_path,
                   check=False)
    assert proc.returncode == 2
    assert "--engine spark" in proc.stderr


def test_the_training_set_built_on_spark_is_the_embedded_one(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    from parkloop.simulate import simulate

    path = tmp_path / "s"
    with Store.create(path) as store:
        simulate(store, devices=4, days=3, seed=5, label_share=1.0)
    run_cli("facts", "build", store=path)
    run_cli("export", "training-set", "--out", tmp_path / "duckdb.parquet", store=path)
    run_cli("export", "training-set", "--out", tmp_path / "spark.parquet", "--engine", "spark",
            "--spark-master", SPARK_MASTER, store=path)
    embedded = pq.read_table(tmp_path / "duckdb.parquet")
    on_spark = pq.read_table(tmp_path / "spark.parquet")
    assert embedded.num_rows > 10
    assert set(embedded.column("source").to_pylist()) >= {"label"}
    assert on_spark.schema.names == embedded.schema.names
    assert table_digest(on_spark.cast(embedded.schema)) == table_digest(embedded)
