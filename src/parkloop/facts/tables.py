"""The fact tables: one per entity, every row keyed by its rules version and device.

Keys are deterministic (a device and a time), so facts built twice, or built in batch and
incrementally, are equal row for row. ``facts_build`` records each build.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.errors import FactsError
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
    """SHA-256 of a table's values in a canonical serialisation: equal digests mean the same
    column names and kinds holding the same values bit for bit — whatever the chunking, the
    buffers' layout or the versions of Arrow, DuckDB or Spark that made the table.

    Per column: its name and kind, then a byte per row (1 = null), then the values with nulls
    as zero: integers as int64 and floats as float64 bit patterns, little-endian (every NaN
    as one NaN; -0.0 stays apart from 0.0), booleans as a byte, strings as their UTF-8 byte
    lengths (int64) then their bytes.

    >>> a = pa.table({"x": [1.0, float("nan")], "s": ["é", None]})
    >>> table_digest(a) == table_digest(pa.concat_tables([a.slice(0, 1), a.slice(1)]))
    True
    >>> other_nan = np.array([0x7FF8_0000_0000_0001], np.uint64).view(np.float64)
    >>> b = pa.table({"x": pa.array([1.0, other_nan[0]]), "s": ["é", None]})
    >>> table_digest(a) == table_digest(b), table_digest(a) == table_digest(a.slice(1))
    (True, False)
    """
    h = hashlib.sha256(b"parkloop-table-digest-1\n%d\n" % table.num_rows)
    for field, column in zip(table.schema, table.columns, strict=True):
        col = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
        kind, values = _canonical(col, field.type)
        h.update(f"{len(field.name)}:{field.name}:{kind}\n".encode())
        h.update(np.asarray(col.is_null(), dtype=np.uint8).tobytes())
        h.update(values)
    return h.hexdigest()


def _canonical(col: pa.Array, t: pa.DataType) -> tuple[str, bytes]:
    """A column's kind and its values' canonical bytes (see :func:`table_digest`)."""
    if pa.types.is_boolean(t):
        return "bool", np.asarray(pc.fill_null(col, False), dtype=np.uint8).tobytes()
    if pa.types.is_integer(t):
        return "int", np.asarray(pc.fill_null(col, 0), dtype="<i8").tobytes()
    if pa.types.is_floating(t):
        v = np.asarray(pc.fill_null(col, 0.0), dtype="<f8").copy()
        v[np.isnan(v)] = np.nan  # one NaN bit pattern for every NaN
        return "float", v.tobytes()
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        b = pc.fill_null(col, "").cast(pa.large_binary())
        offsets = np.frombuffer(b.buffers()[1], dtype="<i8")[b.offset:b.offset + len(b) + 1]
        data = b.buffers()[2]
        body = data.to_pybytes()[offsets[0]:offsets[-1]] if data is not None else b""
        return "str", np.diff(offsets).astype("<i8").tobytes() + body
    raise FactsError(f"table_digest: no canonical form for column type {t}")
