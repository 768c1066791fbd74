"""``parkloop facts build --engine spark``: the same facts, computed on Apache Spark.

The raw events go to Spark as Parquet (exported from the store, or an export that already
lives on the cluster's storage), are grouped by device, and each device runs through the very
same :func:`~parkloop.facts.pipeline.device_facts` in a Python worker (a grouped map over
Arrow: ``groupBy("device_id").applyInArrow``). Each device's fact tables come back as Arrow
IPC and are written by the embedded engine's writer, in device order: equal raw events and
rules give byte-equal facts on either engine, and tests compare them.

Spark is imported only here, and only when this engine is asked for.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from parkloop.errors import FactsError
from parkloop.facts.build import BuildReport, write_facts
from parkloop.facts.inputs import (
    KIND_ACTIVITY,
    KIND_FEEDBACK,
    KIND_FIX,
    KIND_LABEL,
    KIND_LINK,
    arrow_inputs,
    raw_watermark,
)
from parkloop.facts.pipeline import DeviceFacts, device_facts
from parkloop.facts.rules import RulesVersion

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from parkloop.store import Store

RAW_FILE = "raw_events.parquet"
"""the one Parquet dataset Spark reads: fixes, car-link changes and activities, by kind"""

_OUT = "device_id string, name string, ipc binary, n_fixes long, n_used long, n_late long"


def export_raw(store: Store, directory: Path) -> Path:
    """Write the store's raw events as one Parquet dataset
    (``directory/raw_events.parquet``) with a ``kind`` column: fixes, car-link changes,
    activities and the person's statements (labels; feedback, said at ``t_ms`` about the
    answer at ``end_ms``); returns its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / RAW_FILE
    none = "NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE, NULL::DOUBLE"
    store.con.execute(f"""COPY (
        SELECT device_id, {KIND_FIX} AS kind, batch_no, seq, t_ms, lat, lon, accuracy_m,
               altitude_m, NULL::BOOLEAN AS connected, NULL::VARCHAR AS activity,
               NULL::BIGINT AS start_ms, NULL::BIGINT AS end_ms, NULL::VARCHAR AS mode,
               NULL::BOOLEAN AS parked
        FROM raw_fix
        UNION ALL
        SELECT device_id, {KIND_LINK}, batch_no, seq, t_ms, {none}, connected, NULL, NULL,
               NULL, NULL, NULL FROM raw_vehicle_link
        UNION ALL
        SELECT device_id, {KIND_ACTIVITY}, batch_no, seq, t_ms, {none}, NULL, activity, NULL,
               NULL, NULL, NULL FROM raw_activity
        UNION ALL
        SELECT device_id, {KIND_LABEL}, batch_no, seq, t_ms, {none}, NULL, NULL, start_ms,
               end_ms, mode, NULL FROM raw_label
        UNION ALL
        SELECT device_id, {KIND_FEEDBACK}, batch_no, seq, t_ms, lat, lon, NULL, NULL,
               NULL, NULL, NULL, parked_at_ms, NULL, parked FROM raw_feedback
    ) TO '{path}' (FORMAT parquet)""")
    return path


@contextmanager
def spark_session(master: str | None = None) -> Iterator[SparkSession]:
    """A Spark session: ``master`` (e.g. ``local[*]``, ``spark://host:7077``), else the
    standard Spark settings (``spark-submit``, ``SPARK_MASTER``...), else ``local[*]``. A
    session already active in this process on that master is used and left running (its
    owner stops it); a new one is stopped on leaving."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise FactsError("the spark engine needs PySpark: pip install 'parkloop[spark]'") \
            from None
    active = SparkSession.getActiveSession()
    if active is not None and master in (None, active.sparkContext.master):
        yield active
        return
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # workers run this parkloop
    from pyspark import SparkConf

    builder = SparkSession.builder.appName("parkloop-facts")
    # the argument, else SPARK_MASTER, else spark-submit's --master, else this machine
    master = (master or os.environ.get("SPARK_MASTER") or SparkConf().get("spark.master")
              or "local[*]")
    builder = builder.master(master)
    if master.startswith("local"):  # a few devices per core: small shuffles
        builder = builder.config("spark.sql.shuffle.partitions", str(4 * (os.cpu_count() or 2)))
    spark = (builder.config("spark.ui.enabled", "false")
             .config("spark.ui.showConsoleProgress", "false")
             .config("spark.sql.execution.arrow.pyspark.enabled", "true")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    try:
        yield spark
    finally:
        spark.stop()


def build_on_spark(store: Store, rules: RulesVersion, *, master: str | None = None,
                   raw: Path | str | None = None) -> BuildReport:
    """Build ``rules``' facts on Spark and write them into the store (as ``build`` does).
    ``raw``: a Parquet export of the raw layer (:func:`export_raw`) to read instead of the
    store's, e.g. on the cluster's storage (a path or a URI such as ``s3a://lake/raw``)."""
    start = time.perf_counter()
    watermark = raw_watermark(store.con)
    with tempfile.TemporaryDirectory(prefix="parkloop-spark-") as tmp:
        source = raw if raw is not None else export_raw(store, Path(tmp))
        with spark_session(master) as spark:
            label = f"spark {spark.sparkContext.master}"
            events = spark.read.parquet(str(source))
            out = events.groupBy("device_id").applyInArrow(_device_facts(rules), _OUT)
            table = out.toArrow()
    results = _results(table)
    return write_facts(store, rules, results, watermark=watermark, started=start, engine=label)


def _device_facts(rules: RulesVersion) -> Any:
    """The function each Spark worker applies to one device's raw events."""

    def run(events: pa.Table) -> pa.Table:
        device = str(events.column("device_id")[0].as_py())
        fixes, signals = arrow_inputs(events)
        facts = device_facts(device, fixes, signals, rules)
        names = list(facts.tables)
        return pa.table({
            "device_id": [device] * len(names), "name": names,
            "ipc": [_ipc(facts.tables[n]) for n in names],
            "n_fixes": [len(fixes)] * len(names), "n_used": [facts.n_used] * len(names),
            "n_late": [facts.n_late] * len(names)})

    return run


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _results(table: pa.Table) -> list[tuple[int, DeviceFacts]]:
    """Each device's facts from Spark's output, in device order."""
    by_device: dict[str, dict[str, Any]] = {}
    for row in table.to_pylist():
        d = by_device.setdefault(row["device_id"], {"tables": {}, **{
            k: row[k] for k in ("n_fixes", "n_used", "n_late")}})
        d["tables"][row["name"]] = pa.ipc.open_stream(row["ipc"]).read_all()
    return [(d["n_fixes"], DeviceFacts(d["tables"], d["n_late"], d["n_used"]))
            for _, d in sorted(by_device.items())
            if d["n_fixes"]]  # as in the embedded build: devices that sent fixes
