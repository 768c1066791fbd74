"""The raw event schema (version 1): event kinds, their fields, and the tables that hold them.

One definition drives everything: the Arrow schemas of :class:`~parkloop.raw.events.EventBatch`,
the DuckDB tables, JSON parsing and the docs (``docs/raw-schema.md``). Times are int64
milliseconds since the Unix epoch, UTC; distances metres; speeds m/s; angles degrees.

>>> [k.name for k in KINDS]
['fix', 'activity', 'vehicle_link', 'label', 'feedback']
>>> FIX.column_names[:4]
('seq', 't_ms', 'lat', 'lon')
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import pyarrow as pa

SCHEMA_VERSION = 1
"""Bumped whenever a raw table changes shape; stores record the version that wrote them."""

ACTIVITIES = ("in_vehicle", "on_bicycle", "on_foot", "walking", "running", "still", "tilting",
              "unknown")
"""The phone's own activity guesses (Android's DetectedActivity names; iOS maps onto them)."""

MODES = ("walk", "run", "bike", "car", "taxi", "bus", "motorcycle", "subway", "train",
         "airplane", "boat", "other")
"""Transport modes a person may state in a label (GeoLife's vocabulary plus walk and other)."""

LINKS = ("bluetooth", "usb")
"""How a phone connects to a car."""


@dataclass(frozen=True)
class Field:
    """One field of an event kind: its name, Arrow type, DuckDB type and whether it is required."""

    name: str
    arrow: pa.DataType
    sql: str
    required: bool
    doc: str


def _f(name: str, arrow: pa.DataType, sql: str, required: bool, doc: str) -> Field:
    return Field(name, arrow, sql, required, doc)


_SEQ = _f("seq", pa.int64(), "BIGINT", True,
          "position of the event in what was sent: index in a JSON batch, line number in a file")
_T = _f("t_ms", pa.int64(), "BIGINT", True, "device time of the event, ms since epoch, UTC")


@dataclass(frozen=True)
class Kind:
    """An event kind: its name, the table that stores it, and its fields after ``seq``."""

    name: str
    table: str
    fields: tuple[Field, ...]
    doc: str

    @property
    def all_fields(self) -> tuple[Field, ...]:
        return (_SEQ, *self.fields)

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.all_fields)

    @cached_property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.arrow, nullable=not f.required)
                          for f in self.all_fields])

    def empty(self) -> pa.Table:
        return self.arrow_schema.empty_table()


FIX = Kind("fix", "raw_fix", (
    _T,
    _f("lat", pa.float64(), "DOUBLE", True, "WGS 84 latitude, degrees, [-90, 90]"),
    _f("lon", pa.float64(), "DOUBLE", True, "WGS 84 longitude, degrees, [-180, 180]"),
    _f("accuracy_m", pa.float64(), "DOUBLE", False,
       "reported horizontal accuracy, metres, [0, 1000000]"),
    _f("speed_mps", pa.float64(), "DOUBLE", False, "reported ground speed, m/s, [0, 400]"),
    _f("bearing_deg", pa.float64(), "DOUBLE", False, "reported bearing, degrees, [0, 360]"),
    _f("altitude_m", pa.float64(), "DOUBLE", False,
       "reported altitude, metres, [-11000, 100000] (ocean floor to edge of space)"),
    _f("provider", pa.string(), "VARCHAR", False, "location provider (gps, network, fused, ...)"),
), "a location fix")

ACTIVITY = Kind("activity", "raw_activity", (
    _T,
    _f("activity", pa.string(), "VARCHAR", True, "one of " + ", ".join(ACTIVITIES)),
    _f("confidence", pa.float64(), "DOUBLE", False, "the phone's confidence, [0, 1]"),
), "the phone's own activity guess")

VEHICLE_LINK = Kind("vehicle_link", "raw_vehicle_link", (
    _T,
    _f("connected", pa.bool_(), "BOOLEAN", True, "true when the car link came up, false when lost"),
    _f("link", pa.string(), "VARCHAR", True, "one of " + ", ".join(LINKS)),
    _f("vehicle", pa.string(), "VARCHAR", False, "opaque id of the car's link (e.g. hashed MAC)"),
), "car Bluetooth/USB connected or disconnected")

LABEL = Kind("label", "raw_label", (
    _T,
    _f("start_ms", pa.int64(), "BIGINT", True, "start of the labelled span, ms since epoch, UTC"),
    _f("end_ms", pa.int64(), "BIGINT", True, "end of the labelled span (>= start), ms, UTC"),
    _f("mode", pa.string(), "VARCHAR", True, "one of " + ", ".join(MODES)),
), "a person's statement of how they travelled during a span")

FEEDBACK = Kind("feedback", "raw_feedback", (
    _T,
    _f("parked_at_ms", pa.int64(), "BIGINT", True, "parked_at of the answer judged, ms, UTC"),
    _f("lat", pa.float64(), "DOUBLE", True, "latitude of the answer judged, degrees"),
    _f("lon", pa.float64(), "DOUBLE", True, "longitude of the answer judged, degrees"),
    _f("parked", pa.bool_(), "BOOLEAN", True, "true: 'yes, I parked here'; false: 'no'"),
    _f("model_version", pa.string(), "VARCHAR", False, "model version of the answer judged"),
    _f("rules_version", pa.string(), "VARCHAR", False, "rules version of the answer judged"),
), "a person confirming or denying 'you parked here'")

KINDS: tuple[Kind, ...] = (FIX, ACTIVITY, VEHICLE_LINK, LABEL, FEEDBACK)
BY_NAME: dict[str, Kind] = {k.name: k for k in KINDS}

QUARANTINE_SCHEMA = pa.schema([
    pa.field("seq", pa.int64(), nullable=False),
    pa.field("kind", pa.string()),
    pa.field("reason", pa.string(), nullable=False),
    pa.field("detail", pa.string(), nullable=False),
    pa.field("source_ref", pa.string()),
    pa.field("payload", pa.string(), nullable=False),
])
"""A rejected event: where it was in the batch, what kind it claimed, why (a stable code and a
human sentence), where it came from (``file:line`` for imports) and exactly what was sent."""


def ddl() -> list[str]:
    """The statements that create schema version 1 of the raw layer (idempotent)."""
    stmts = [
        "CREATE TABLE IF NOT EXISTS meta (key VARCHAR PRIMARY KEY, value VARCHAR NOT NULL)",
        """CREATE TABLE IF NOT EXISTS raw_batch (
            batch_no BIGINT PRIMARY KEY,      -- arrival order in this store; raw watermark
            device_id VARCHAR NOT NULL,
            batch_id VARCHAR NOT NULL,
            content_hash VARCHAR NOT NULL,    -- SHA-256 of the batch as sent, see raw.events
            source VARCHAR NOT NULL,          -- api, file, geolife, simulator
            schema_version INTEGER NOT NULL,
            received_ms BIGINT NOT NULL,      -- when this store accepted it, ms, UTC
            n_events BIGINT NOT NULL,
            n_stored BIGINT NOT NULL,
            n_quarantined BIGINT NOT NULL,
            UNIQUE (device_id, batch_id))""",
    ]
    for kind in KINDS:
        cols = ",\n            ".join(
            f"{f.name} {f.sql}{' NOT NULL' if f.required else ''}" for f in kind.all_fields)
        stmts.append(f"""CREATE TABLE IF NOT EXISTS {kind.table} (
            device_id VARCHAR NOT NULL,
            batch_no BIGINT NOT NULL,
            {cols})""")
    stmts.append("""CREATE TABLE IF NOT EXISTS quarantine (
            device_id VARCHAR NOT NULL,
            batch_no BIGINT NOT NULL,
            seq BIGINT NOT NULL,
            kind VARCHAR,
            reason VARCHAR NOT NULL,
            detail VARCHAR NOT NULL,
            source_ref VARCHAR,
            payload VARCHAR NOT NULL)""")
    return stmts


def markdown() -> str:
    """The field tables of every kind as Markdown (``docs/raw-schema.md`` embeds this; a test
    keeps the two equal)."""
    out = []
    for k in KINDS:
        out += [f"### `{k.name}` → table `{k.table}`: {k.doc}", "",
                "| field | type | required | meaning |", "|---|---|---|---|"]
        out += [f"| `{f.name}` | {f.sql} | {'yes' if f.required else 'no'} | {f.doc} |"
                for f in k.all_fields]
        out.append("")
    return "\n".join(out)
