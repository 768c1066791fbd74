"""Batches of raw events as sent: one Arrow table per event kind, plus events that could not even
be typed. Every source (JSON over HTTP or file, GeoLife, the simulator) produces an
:class:`EventBatch`; :mod:`parkloop.raw.validate` and :mod:`parkloop.raw.log` take it from there.

>>> b = parse_events("phone-1", "b1", [
...     {"kind": "fix", "t": "2026-01-05T08:00:00Z", "lat": 52.5, "lon": 13.4},
...     {"kind": "teleport", "t": 0},
... ])
>>> b.n_events, b.tables["fix"].num_rows, b.rejects.column("reason").to_pylist()
(2, 1, ['unknown_kind'])
>>> b.digest() == parse_events("phone-1", "b1", [
...     {"lat": 52.5, "lon": 13.4, "kind": "fix", "t": 1767600000000},
...     {"t": 0, "kind": "teleport"},
... ]).digest()
True
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import (
    BaseModel,
    ConfigDict,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)
from pydantic.functional_validators import BeforeValidator

from parkloop.errors import InvalidBatch
from parkloop.raw.schema import BY_NAME, KINDS, QUARANTINE_SCHEMA

ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
"""Device and batch ids: 1-128 characters, letters, digits and ``. _ : @ -``."""

SOURCES = ("api", "file", "geolife", "simulator")


def check_id(what: str, value: object) -> str:
    """Return ``value`` if it is a usable device or batch id, else raise :class:`InvalidBatch`."""
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise InvalidBatch(
            f"{what} {value!r} is not valid: use 1-128 letters, digits or . _ : @ - "
            "(starting with a letter or digit)")
    return value


@dataclass(frozen=True)
class EventBatch:
    """One batch of one device's events, as sent, before validation.

    ``tables`` maps a kind name to a table with exactly that kind's Arrow schema; ``rejects``
    holds events that could not be typed at all (``QUARANTINE_SCHEMA``). Every event has a
    distinct ``seq``: its position in what was sent.
    """

    device_id: str
    batch_id: str
    source: str
    tables: Mapping[str, pa.Table]
    rejects: pa.Table = field(default_factory=QUARANTINE_SCHEMA.empty_table)
    origin: str | None = None
    """Where a file-borne batch came from (a path); quarantined events cite ``origin:seq``."""
    _digest: str | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_id("device_id", self.device_id)
        check_id("batch_id", self.batch_id)
        if self.source not in SOURCES:
            raise ValueError(f"unknown source {self.source!r}; known: {', '.join(SOURCES)}")
        for name, table in self.tables.items():
            kind = BY_NAME.get(name)
            if kind is None:
                raise ValueError(f"unknown event kind {name!r}")
            if not table.schema.equals(kind.arrow_schema):
                raise ValueError(f"{name} table schema differs from the {name} kind's schema")
        if not self.rejects.schema.equals(QUARANTINE_SCHEMA):
            raise ValueError("rejects table schema differs from QUARANTINE_SCHEMA")
        seqs = [np.asarray(t.column("seq")) for t in (*self.tables.values(), self.rejects)
                if t.num_rows]
        distinct = (len(seqs) == 0 or (len(seqs) == 1 and bool(np.all(np.diff(seqs[0]) > 0)))
                    or len(np.unique(np.concatenate(seqs))) == sum(map(len, seqs)))
        if not distinct:
            raise ValueError(f"batch {self.batch_id!r}: event seq numbers are not distinct")

    @classmethod
    def of(cls, device_id: str, batch_id: str, source: str,
           tables: Mapping[str, pa.Table | Mapping[str, Any]],
           rejects: pa.Table | None = None, origin: str | None = None) -> EventBatch:
        """Build a batch, casting each kind's columns (a table or a dict of columns) to its
        schema; kinds absent from ``tables`` have no events."""
        typed = {}
        for name, cols in tables.items():
            schema = BY_NAME[name].arrow_schema
            table = cols if isinstance(cols, pa.Table) else pa.table(dict(cols))
            arrays = []
            for f in schema:
                if f.name not in table.column_names:
                    arrays.append(pa.nulls(table.num_rows, f.type))
                else:
                    col = table.column(f.name)
                    arrays.append(col if col.type == f.type else col.cast(f.type))
            typed[name] = pa.Table.from_arrays(arrays, schema=schema)
        return cls(device_id, batch_id, source, typed,
                   QUARANTINE_SCHEMA.empty_table() if rejects is None else rejects, origin)

    @property
    def n_events(self) -> int:
        return int(sum(t.num_rows for t in self.tables.values()) + self.rejects.num_rows)

    def digest(self) -> str:
        """Content hash of the batch as sent (SHA-256, hex): what makes a retry a retry.

        Computed from the typed columns of every kind in schema order and from the seq and
        payload of untyped events, so key order in JSON and chunking of Arrow arrays do not
        matter, while any change of any value does. See :func:`digests`.
        """
        return digests([self])[0]


def digests(batches: Sequence[EventBatch]) -> list[str]:
    """:meth:`EventBatch.digest` of many batches at once: each column is converted once for
    all batches, then hashed slice by slice (an import hashes thousands of batches). Each
    batch keeps its digest, so hashing can happen where the batch is made (in parallel)."""
    todo = [b for b in batches if b._digest is None]
    for batch, digest in zip(todo, _compute_digests(todo), strict=True):
        object.__setattr__(batch, "_digest", digest)
    return [b._digest for b in batches]  # type: ignore[misc]


def _compute_digests(batches: Sequence[EventBatch]) -> list[str]:
    hashes = [hashlib.sha256(b"parkloop-batch-v1") for _ in batches]
    parts: list[tuple[str, tuple[str, ...], list[pa.Table], list[int]]] = []
    for kind in KINDS:
        owned = [(i, b.tables[kind.name]) for i, b in enumerate(batches)
                 if kind.name in b.tables and b.tables[kind.name].num_rows]
        parts.append((f"kind:{kind.name}", kind.column_names,
                      [t for _, t in owned], [i for i, _ in owned]))
    owned = [(i, b.rejects) for i, b in enumerate(batches) if b.rejects.num_rows]
    parts.append(("rejects", ("seq", "payload"), [t for _, t in owned], [i for i, _ in owned]))
    for label, columns, tables, owners in parts:
        if not tables:
            continue
        tables = [t if _sorted(t) else t.sort_by("seq") for t in tables]
        bounds = np.cumsum([0] + [t.num_rows for t in tables])
        for i, n in zip(owners, np.diff(bounds), strict=True):
            hashes[i].update(f"\x00{label}:{n}".encode())
        whole = pa.concat_tables([t.select(list(columns)) for t in tables])
        for name in columns:
            col = _Canonical(whole.column(name))
            for k, i in enumerate(owners):
                hashes[i].update(f"\x00col:{name}".encode())
                col.update(hashes[i], int(bounds[k]), int(bounds[k + 1]))
    return [h.hexdigest() for h in hashes]


def _sorted(table: pa.Table) -> bool:
    return bool(np.all(np.diff(np.asarray(table.column("seq"))) > 0))


class _Canonical:
    """A column's canonical bytes by row range: validity, then the values of the valid rows
    (floats with one NaN pattern) or, for text, lengths and UTF-8 data."""

    def __init__(self, column: pa.ChunkedArray) -> None:
        arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
        self.valid = np.asarray(arr.is_valid()) if arr.null_count else None
        self.text = pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)
        if self.text:
            filled = pc.fill_null(arr, "").cast(pa.large_string())
            self.lengths = np.asarray(pc.binary_length(filled), dtype=np.int64)
            self.offsets = np.frombuffer(filled.buffers()[1], np.int64)[
                filled.offset:filled.offset + len(filled) + 1]
            data = filled.buffers()[2]
            self.data = memoryview(data) if data is not None else memoryview(b"")
        else:
            fill = False if pa.types.is_boolean(arr.type) else 0
            values = np.asarray(pc.fill_null(arr, fill) if arr.null_count else arr)
            if values.dtype.kind == "f":
                values = np.where(np.isnan(values), np.nan, values)  # one NaN bit pattern
            self.values = np.ascontiguousarray(values)

    def update(self, h: Any, start: int, stop: int) -> None:
        valid = None if self.valid is None else self.valid[start:stop]
        if valid is None or valid.all():
            h.update(b"\x01")
            valid = None
        else:
            h.update(b"\x02" + np.packbits(valid).tobytes())
        if self.text:
            h.update(self.lengths[start:stop].tobytes())
            h.update(self.data[int(self.offsets[start]):int(self.offsets[stop])])
        elif valid is None:
            h.update(self.values[start:stop])
        elif valid.any():
            h.update(self.values[start:stop][valid])


# --- JSON events -------------------------------------------------------------------------------

def _to_ms(value: object) -> object:
    """Times in JSON: int ms since epoch, or an ISO 8601 string with a UTC offset."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError("not an ISO 8601 time") from None
        if parsed.tzinfo is None:
            raise ValueError("time without a UTC offset (add Z or +HH:MM)")
        return int(parsed.timestamp() * 1000)
    return value


Millis = Annotated[StrictInt, BeforeValidator(_to_ms)]
Number = StrictFloat  # strict: accepts ints and floats, refuses strings and booleans


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    t: Millis


class _Fix(_Event):
    kind: Literal["fix"]
    lat: Number
    lon: Number
    accuracy_m: Number | None = None
    speed_mps: Number | None = None
    bearing_deg: Number | None = None
    altitude_m: Number | None = None
    provider: StrictStr | None = None


class _Activity(_Event):
    kind: Literal["activity"]
    activity: StrictStr
    confidence: Number | None = None


class _VehicleLink(_Event):
    kind: Literal["vehicle_link"]
    connected: StrictBool
    link: StrictStr
    vehicle: StrictStr | None = None


class _Label(_Event):
    kind: Literal["label"]
    start: Millis
    end: Millis
    mode: StrictStr


class _Feedback(_Event):
    kind: Literal["feedback"]
    parked_at: Millis
    lat: Number
    lon: Number
    parked: StrictBool
    model_version: StrictStr | None = None
    rules_version: StrictStr | None = None


_MODELS: dict[str, type[_Event]] = {
    "fix": _Fix, "activity": _Activity, "vehicle_link": _VehicleLink, "label": _Label,
    "feedback": _Feedback}
_RENAMES = {"t": "t_ms", "start": "start_ms", "end": "end_ms", "parked_at": "parked_at_ms"}


def json_payload(event: object) -> str:
    """The canonical JSON text of an event as sent (sorted keys), kept in quarantine."""
    return json.dumps(event, sort_keys=True, separators=(",", ":"), default=repr)


def parse_events(device_id: str, batch_id: str, events: Sequence[object], *,
                 source: str = "api") -> EventBatch:
    """Type a JSON batch: each event becomes a row of its kind, or a reject with its reasons.

    Field names in JSON are those of the schema with times as ``t``, ``start``, ``end`` and
    ``parked_at`` (int ms since epoch or ISO 8601 with offset). Values are range-checked later,
    by :func:`parkloop.raw.validate.validate`, the same way for every source.
    """
    check_id("device_id", device_id)
    check_id("batch_id", batch_id)
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in _MODELS}
    rejects: list[dict[str, Any]] = []
    for seq, event in enumerate(events):
        kind = event.get("kind") if isinstance(event, dict) else None
        model = _MODELS.get(kind) if isinstance(kind, str) else None
        if model is None:
            reason, detail = ("not_an_object", "an event must be a JSON object") \
                if not isinstance(event, dict) else \
                ("unknown_kind", f"kind {kind!r} is not one of {', '.join(_MODELS)}")
            rejects.append(_reject(seq, kind, reason, detail, event))
            continue
        try:
            parsed = model.model_validate(event)
        except ValidationError as exc:
            reason, detail = _explain(exc)
            rejects.append(_reject(seq, kind, reason, detail, event))
            continue
        row = {_RENAMES.get(k, k): v for k, v in parsed.model_dump(exclude={"kind"}).items()}
        row["seq"] = seq
        rows[str(kind)].append(row)
    tables = {k: pa.Table.from_pylist(r, schema=BY_NAME[k].arrow_schema)
              for k, r in rows.items() if r}
    return EventBatch(device_id, batch_id, source, tables,
                      pa.Table.from_pylist(rejects, schema=QUARANTINE_SCHEMA))


def _reject(seq: int, kind: object, reason: str, detail: str, event: object) -> dict[str, Any]:
    return {"seq": seq, "kind": kind if isinstance(kind, str) else None, "reason": reason,
            "detail": detail, "source_ref": None, "payload": json_payload(event)}


def _explain(exc: ValidationError) -> tuple[str, str]:
    """Every problem of one event, as stable reason codes and one sentence."""
    codes, parts = [], []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"] if not str(p).startswith(("function-",)))
        where = where.split(".")[0] if where else "event"
        code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(
            err["type"], "wrong_type")
        codes.append(code)
        msg = err["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {msg}")
    return ";".join(dict.fromkeys(codes)), "; ".join(dict.fromkeys(parts))
