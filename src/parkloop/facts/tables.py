"""The fact tables: one per entity, every row keyed by its rules version and device.

Keys are deterministic (a device and a time), so facts built twice, or built in batch and
incrementally, are equal row for row. ``facts_build`` records each build.
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from parkloop.facts.features import FEATURES

_KEY = [("rules_version", pa.string()), ("device_id", pa.string())]
_F, _I, _S, _B = pa.float64(), pa.int64(), pa.string(), pa.bool_()

SCHEMAS: dict[str, pa.Schema] = {
    "facts_stop": pa.schema([*_KEY,
        ("started_ms", _I), ("finished_ms", _I), ("lat", _F), ("lon", _F), ("n_fixes", _I),
        ("place_no", _I)]),
    "facts_trip": pa.schema([*_KEY,
        ("started_ms", _I), ("finished_ms", _I), ("start_lat", _F), ("start_lon", _F),
        ("end_lat", _F), ("end_lon", _F), ("distance_m", _F), ("n_fixes", _I)]),
    "facts_leg": pa.schema([*_KEY,
        ("started_ms", _I), ("finished_ms", _I), ("mode", _S), ("start_lat", _F),
        ("start_lon", _F), ("end_lat", _F), ("end_lon", _F), ("distance_m", _F),
        ("n_fixes", _I)]),
    "facts_leg_end": pa.schema([*_KEY,
        ("ended_ms", _I), ("lat", _F), ("lon", _F), ("leg_started_ms", _I),
        ("decided_ms", _I), ("place_no", _I)] + [
        (name, _B if name in {"drives_on", "place_is_top", "link_seen",
                              "link_disconnect_near_end"}
         else _I if name in {"leg_n_halts", "weekday_local", "n_fixes_after",
                             "place_visits_before", "n_places_known", "drives_before",
                             "drives_started_near_before", "drives_ended_near_before",
                             "said_car_before", "said_other_before"}
         else _F)
        for name in FEATURES]),
    "facts_place": pa.schema([*_KEY,
        ("place_no", _I), ("lat", _F), ("lon", _F), ("n_visits", _I), ("dwell_total_s", _F),
        ("first_ms", _I), ("last_ms", _I)]),
}
"""Arrow schemas of the fact tables; the DuckDB tables have the same columns."""

TIME_KEY = {"facts_stop": "started_ms", "facts_trip": "started_ms", "facts_leg": "started_ms",
            "facts_leg_end": "ended_ms", "facts_place": "place_no"}
"""The column that, with the device, identifies a row of each table."""

_SQL = {pa.float64(): "DOUBLE", pa.int64(): "BIGINT", pa.string(): "VARCHAR",
        pa.bool_(): "BOOLEAN"}


def layout_digest() -> str:
    """Identity of the fact tables' layout (changes when any column does)."""
    text = ";".join(f"{n}:{s}" for n, s in sorted(SCHEMAS.items()))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def ddl() -> list[str]:
    """CREATE statements of the fact tables (idempotent)."""
    stmts = ["""CREATE TABLE IF NOT EXISTS facts_build (
        rules_version VARCHAR PRIMARY KEY, rules_name VARCHAR NOT NULL,
        params_json VARCHAR NOT NULL, engine_version VARCHAR NOT NULL,
        raw_watermark BIGINT NOT NULL, built_ms BIGINT NOT NULL, seconds DOUBLE NOT NULL,
        n_devices BIGINT NOT NULL, n_fixes BIGINT NOT NULL, n_fixes_used BIGINT NOT NULL,
        n_late BIGINT NOT NULL)"""]
    for name, schema in SCHEMAS.items():
        cols = ", ".join(f"{f.name} {_SQL[f.type]}" for f in schema)
        stmts.append(f"CREATE TABLE IF NOT EXISTS {name} ({cols})")
    return stmts


def table_digest(table: pa.Table) -> str:
    """SHA-256 of a table's bytes (Arrow IPC, one record batch): equal digests mean
    byte-identical facts, NaNs included.

    >>> a = pa.table({"x": [1.0, float("nan")]})
    >>> table_digest(a) == table_digest(pa.concat_tables([a.slice(0, 1), a.slice(1)]))
    True
    """
    sink = pa.BufferOutputStream()
    combined = table.combine_chunks()
    with pa.ipc.new_stream(sink, combined.schema) as writer:
        writer.write_table(combined, max_chunksize=max(combined.num_rows, 1))
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()
