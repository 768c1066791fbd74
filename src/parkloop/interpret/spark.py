"""Training sets on Apache Spark: the labelled leg-end feature table, built where the facts are.

The same statements as :mod:`parkloop.interpret.labels` (a label's end matched to the
nearest leg end within 5 min and 300 m, negatives inside non-car spans, feedback first), in
Spark SQL over the raw Parquet export (:func:`parkloop.facts.spark.export_raw`) and the leg
ends, then joined with the leg ends' features. The learner itself stays on one machine: the
table has one row per labelled leg end. A test checks it equals the embedded engine's.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa

from parkloop.facts.features import FEATURES
from parkloop.facts.inputs import KIND_FEEDBACK, KIND_FIX, KIND_LABEL
from parkloop.interpret.labels import _HAVERSINE, MATCH_M, MATCH_S

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from parkloop.store import Store

LABEL_COLUMNS = ("device_id", "ended_ms", "parked", "mode", "source", "batch_no", "seq")


def labelled_leg_ends(spark: SparkSession, raw: Path | str, leg_ends: DataFrame,
                      rules_version: str) -> DataFrame:
    """One row per labelled leg end of ``rules_version``: the columns of
    :func:`~parkloop.interpret.labels.leg_end_labels` and every leg-end feature."""
    spark.read.parquet(str(raw)).createOrReplaceTempView("raw_events")
    leg_ends.filter(leg_ends.rules_version == rules_version) \
        .createOrReplaceTempView("leg_ends")
    win = MATCH_S * 1000
    features = ", ".join(f"e.{f}" for f in FEATURES)
    return spark.sql(f"""
        WITH ends AS (SELECT device_id, ended_ms, lat, lon FROM leg_ends),
        fix AS (SELECT device_id, t_ms, lat, lon FROM raw_events WHERE kind = {KIND_FIX}),
        label AS (SELECT device_id, batch_no, seq, start_ms, end_ms, mode
                  FROM raw_events WHERE kind = {KIND_LABEL}),
        label_end AS (
            SELECT * FROM (
                SELECT l.device_id, l.batch_no, l.seq, l.mode, l.end_ms, f.lat, f.lon,
                       row_number() OVER (PARTITION BY l.device_id, l.batch_no, l.seq
                           ORDER BY abs(f.t_ms - l.end_ms), f.t_ms, f.lat, f.lon) AS rn
                FROM label l JOIN fix f ON f.device_id = l.device_id
                 AND f.t_ms BETWEEN l.end_ms - {win} AND l.end_ms + {win}) WHERE rn = 1),
        statements AS (
            SELECT device_id, batch_no, seq, mode, end_ms AS at_ms, lat, lon,
                   mode = 'car' AS parked, 'label' AS source, 1 AS rank FROM label_end
            UNION ALL
            SELECT device_id, batch_no, seq, 'feedback', end_ms, lat, lon, parked,
                   'feedback', 0 FROM raw_events WHERE kind = {KIND_FEEDBACK}),
        pairs AS (
            SELECT e.device_id, e.ended_ms, s.parked, s.mode, s.source, s.batch_no, s.seq,
                   s.rank, abs(e.ended_ms - s.at_ms) AS dt
            FROM ends e JOIN statements s
              ON s.device_id = e.device_id
             AND e.ended_ms BETWEEN s.at_ms - {win} AND s.at_ms + {win}
            WHERE {_HAVERSINE.format(a="e", b="s")} <= {MATCH_M}),
        per_statement AS (
            SELECT * FROM (
                SELECT *, row_number() OVER (PARTITION BY device_id, source, batch_no, seq
                                             ORDER BY dt, ended_ms) AS rn FROM pairs)
            WHERE rn = 1),
        at_end AS (
            SELECT device_id, ended_ms, parked, mode, source, batch_no, seq FROM (
                SELECT *, row_number() OVER (PARTITION BY device_id, ended_ms
                    ORDER BY rank, dt, batch_no, seq) AS rn2 FROM per_statement)
            WHERE rn2 = 1),
        inside AS (
            SELECT device_id, ended_ms, parked, mode, source, batch_no, seq FROM (
                SELECT e.device_id, e.ended_ms, false AS parked, l.mode, 'inside' AS source,
                       l.batch_no, l.seq,
                       row_number() OVER (PARTITION BY e.device_id, e.ended_ms
                                          ORDER BY l.batch_no, l.seq) AS rn
                FROM ends e JOIN label l
                  ON l.device_id = e.device_id AND e.ended_ms > l.start_ms
                 AND e.ended_ms < l.end_ms - {win}
                LEFT ANTI JOIN at_end a
                  ON a.device_id = e.device_id AND a.ended_ms = e.ended_ms
                WHERE l.mode <> 'car')
            WHERE rn = 1),
        labels AS (SELECT * FROM at_end UNION ALL SELECT * FROM inside)
        SELECT l.*, {features}
        FROM labels l JOIN leg_ends e ON e.device_id = l.device_id AND e.ended_ms = l.ended_ms
        """)


def training_table(spark: SparkSession, raw: Path | str, facts: Path | str,
                   rules_version: str) -> pa.Table:
    """The labelled leg-end feature table of ``rules_version`` from a raw Parquet export
    and a Parquet export of ``facts_leg_end``, ordered by device and end time."""
    table = labelled_leg_ends(spark, raw, spark.read.parquet(str(facts)), rules_version) \
        .toArrow()
    return table.sort_by([("device_id", "ascending"), ("ended_ms", "ascending")])


def store_training_table(store: Store, rules_version: str, *, master: str | None = None
                         ) -> pa.Table:
    """:func:`training_table` of a store's raw events and leg ends, exported as Parquet to a
    temporary directory and built on Spark (``master``: see
    :func:`~parkloop.facts.spark.spark_session`)."""
    import tempfile

    import pyarrow.parquet as pq

    from parkloop.facts.spark import export_raw, spark_session

    with tempfile.TemporaryDirectory(prefix="parkloop-spark-") as tmp:
        raw = export_raw(store, Path(tmp))
        facts = Path(tmp) / "facts_leg_end.parquet"
        pq.write_table(store.con.sql(
            "SELECT * FROM facts_leg_end WHERE rules_version = $rv", params={"rv": rules_version}
        ).to_arrow_table(), facts)
        with spark_session(master) as spark:
            return training_table(spark, raw, facts, rules_version)


__all__ = ["LABEL_COLUMNS", "labelled_leg_ends", "store_training_table", "training_table"]
