"""The raw event log: append-only, idempotent per (device_id, batch_id), durable on return.

:func:`store_batches` is the only writer of raw tables. It never updates or deletes a raw row:
a retried batch (same content hash) is reported as a duplicate and stored once; a different
batch under a stored id is refused; invalid events go to ``quarantine`` with their reasons
while the valid events of their batch are stored. All batches of one call commit in one DuckDB
transaction, which DuckDB makes durable (write-ahead log) before the call returns.

>>> import tempfile
>>> from parkloop.store import Store
>>> from parkloop.raw.events import parse_events
>>> batch = parse_events("phone-1", "b1", [
...     {"kind": "fix", "t": "2026-01-05T08:00:00Z", "lat": 52.52, "lon": 13.40},
...     {"kind": "fix", "t": "2026-01-05T08:00:05Z", "lat": 152.5, "lon": 13.40}])
>>> with tempfile.TemporaryDirectory() as d, Store.create(d) as store:
...     first = store_batch(store, batch)
...     again = store_batch(store, batch)
>>> first.status, first.n_stored, first.n_quarantined, first.reasons
('stored', 1, 1, {'lat_out_of_range': 1})
>>> again.status, again.batch_no == first.batch_no
('duplicate', True)
"""

from __future__ import annotations

import contextlib
import errno
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from parkloop.errors import BatchConflict, StoreFull
from parkloop.raw.events import EventBatch, digests, json_payload
from parkloop.raw.schema import KINDS, QUARANTINE_SCHEMA, SCHEMA_VERSION
from parkloop.raw.validate import DEFAULT_LIMITS, Limits, check

if TYPE_CHECKING:
    from parkloop.store import Store

_WRITE_LOCK = threading.Lock()  # one writer per process; DuckDB's file lock covers processes


@dataclass(frozen=True)
class StoreResult:
    """What happened to one batch."""

    device_id: str
    batch_id: str
    status: Literal["stored", "duplicate", "conflict"]
    batch_no: int | None
    """arrival number in the store (the stored batch's, for a duplicate); None for a conflict"""
    n_events: int
    n_stored: int
    n_quarantined: int
    reasons: dict[str, int] = field(default_factory=dict)
    """quarantined events by reason code (for a newly stored batch)"""
    stored_by_kind: dict[str, int] = field(default_factory=dict)
    """stored events by kind (for a newly stored batch)"""


def store_batch(store: Store, batch: EventBatch, *, limits: Limits = DEFAULT_LIMITS,
                received_ms: int | None = None) -> StoreResult:
    """Store one batch; raise :class:`BatchConflict` if its id holds other content."""
    (result,) = store_batches(store, [batch], limits=limits, received_ms=received_ms)
    if result.status == "conflict":
        stored = store.scalar(
            "SELECT content_hash FROM raw_batch WHERE device_id = ? AND batch_id = ?",
            [batch.device_id, batch.batch_id])
        raise BatchConflict(batch.device_id, batch.batch_id, stored or "?", batch.digest())
    return result


def store_batches(store: Store, batches: Sequence[EventBatch], *, limits: Limits = DEFAULT_LIMITS,
                  received_ms: int | None = None) -> list[StoreResult]:
    """Store many batches in one transaction; one result per batch, in order.

    Conflicts are reported (status ``conflict``), not raised, so an import can carry on.
    """
    received_ms = int(time.time() * 1000) if received_ms is None else received_ms
    hashes = digests(batches)
    with _WRITE_LOCK:
        con = store.con
        existing = _existing(store, batches)
        results: list[StoreResult | None] = [None] * len(batches)
        new: list[int] = []
        seen: dict[tuple[str, str], int] = {}
        for i, (b, digest) in enumerate(zip(batches, hashes, strict=True)):
            key = (b.device_id, b.batch_id)
            if key in existing or key in seen:
                old_no, old_hash, n_ev, n_st, n_q = existing.get(key) or (
                    -1, hashes[seen[key]], 0, 0, 0)
                if old_hash != digest:
                    results[i] = StoreResult(*key, "conflict", None, b.n_events, 0, 0)
                else:
                    results[i] = StoreResult(*key, "duplicate", old_no, n_ev, n_st, n_q)
                continue
            seen[key] = i
            new.append(i)
        if new:
            con.execute("BEGIN")
            try:
                first_no = int(store.scalar(
                    "SELECT coalesce(max(batch_no), 0) + 1 FROM raw_batch"))
                written = _write(store, [batches[i] for i in new], first_no, received_ms,
                                 limits, [hashes[i] for i in new])
                con.execute("COMMIT")
            except BaseException as exc:
                _rollback(con)
                if _no_space(exc):
                    raise StoreFull(
                        f"the disk of store {store.path} is full: none of these "
                        f"{len(new)} batch(es) was stored; free space and send them again"
                    ) from None
                raise
            for i, res in zip(new, written, strict=True):
                results[i] = res
        # duplicates of a batch stored earlier in this same call report its batch_no
        for i, dup in enumerate(results):
            if dup is not None and dup.status == "duplicate" and dup.batch_no == -1:
                orig = results[seen[(dup.device_id, dup.batch_id)]]
                assert orig is not None
                results[i] = StoreResult(dup.device_id, dup.batch_id, "duplicate",
                                         orig.batch_no, orig.n_events, orig.n_stored,
                                         orig.n_quarantined)
    return [r for r in results if r is not None]


def _rollback(con: duckdb.DuckDBPyConnection) -> None:
    """Roll back the open transaction, if a failed COMMIT left one."""
    with contextlib.suppress(duckdb.TransactionException):  # a failed COMMIT ended it
        con.execute("ROLLBACK")


def _no_space(exc: BaseException) -> bool:
    """Whether a write failed for want of disk space (DuckDB reports it in its message)."""
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    return isinstance(exc, duckdb.Error) and "No space left on device" in str(exc)


def _existing(store: Store, batches: Sequence[EventBatch]
              ) -> dict[tuple[str, str], tuple[int, str, int, int, int]]:
    if not batches:
        return {}
    keys = pa.table({"device_id": [b.device_id for b in batches],
                     "batch_id": [b.batch_id for b in batches]})
    store.con.register("_keys", keys)
    rows = store.con.execute(
        """SELECT b.device_id, b.batch_id, b.batch_no, b.content_hash, b.n_events, b.n_stored,
                  b.n_quarantined
           FROM raw_batch b JOIN (SELECT DISTINCT * FROM _keys) k USING (device_id, batch_id)"""
    ).fetchall()
    store.con.unregister("_keys")
    return {(r[0], r[1]): (r[2], r[3], r[4], r[5], r[6]) for r in rows}


def _write(store: Store, batches: list[EventBatch], first_no: int, received_ms: int,
           limits: Limits, digests: list[str]) -> list[StoreResult]:
    """Insert new batches (inside the caller's transaction); return their results."""
    con = store.con
    n = len(batches)
    stored = np.zeros(n, np.int64)
    by_kind: list[Counter[str]] = [Counter() for _ in range(n)]
    quarantined: list[Counter[str]] = [Counter() for _ in range(n)]
    quarantine_parts: list[pa.Table] = []
    too_big = [b.n_events > limits.max_batch_events for b in batches]

    for kind in KINDS:
        parts, owners = [], []
        for i, b in enumerate(batches):
            table = b.tables.get(kind.name)
            if table is not None and table.num_rows:
                parts.append(table)
                owners.append(np.full(table.num_rows, i, np.int32))
        if not parts:
            continue
        table = pa.concat_tables(parts)
        owner = np.concatenate(owners)
        bad, reasons, details = check(kind, table, received_ms=received_ms, limits=limits)
        oversize = np.asarray(too_big)[owner]
        if oversize.any():
            reasons, details = _with_oversize(bad, oversize, reasons, details, limits)
            bad = bad | oversize
        good = ~bad
        if good.any():
            accepted = table.filter(pa.array(good)).append_column(
                "batch_idx", pa.array(owner[good]))
            _insert_rows(store, kind.table, kind.column_names, accepted, batches, first_no)
            counts = np.bincount(owner[good], minlength=n)
            stored += counts
            for j in np.flatnonzero(counts).tolist():
                by_kind[j][kind.name] = int(counts[j])
        if bad.any():
            rows = table.filter(pa.array(bad))
            idx = owner[bad]
            payloads = [json_payload(r) for r in rows.drop_columns(["seq"]).to_pylist()]
            seqs = rows.column("seq").to_numpy()
            refs = [f"{batches[j].origin}:{s}" if batches[j].origin else None
                    for j, s in zip(idx, seqs, strict=True)]
            quarantine_parts.append(pa.table({
                "seq": seqs, "kind": [kind.name] * len(seqs), "reason": reasons,
                "detail": details, "source_ref": refs, "payload": payloads,
                "batch_idx": idx}))
            for j, r in zip(idx, reasons, strict=True):
                quarantined[j][r] += 1
    for i, b in enumerate(batches):
        if b.rejects.num_rows:
            rej = b.rejects
            if too_big[i]:
                rej = rej.set_column(rej.schema.get_field_index("reason"), "reason",
                                     pa.array(["batch_too_large"] * rej.num_rows))
            quarantine_parts.append(rej.append_column(
                "batch_idx", pa.array(np.full(rej.num_rows, i, np.int32))))
            quarantined[i].update(rej.column("reason").to_pylist())

    batch_rows = pa.table({
        "batch_no": np.arange(first_no, first_no + n, dtype=np.int64),
        "device_id": [b.device_id for b in batches],
        "batch_id": [b.batch_id for b in batches],
        "content_hash": digests,
        "source": [b.source for b in batches],
        "schema_version": np.full(n, SCHEMA_VERSION, np.int32),
        "received_ms": np.full(n, received_ms, np.int64),
        "n_events": np.array([b.n_events for b in batches], np.int64),
        "n_stored": stored,
        "n_quarantined": np.array([sum(c.values()) for c in quarantined], np.int64),
    })
    con.register("batch_rows", batch_rows)
    con.execute("INSERT INTO raw_batch SELECT * FROM batch_rows")
    con.unregister("batch_rows")
    if quarantine_parts:
        q = pa.concat_tables([p.select([*QUARANTINE_SCHEMA.names, "batch_idx"]).cast(
            pa.schema([*QUARANTINE_SCHEMA, pa.field("batch_idx", pa.int32())]))
            for p in quarantine_parts])
        _insert_rows(store, "quarantine", QUARANTINE_SCHEMA.names, q, batches, first_no)
    return [StoreResult(b.device_id, b.batch_id, "stored", first_no + i, b.n_events,
                        int(stored[i]), sum(quarantined[i].values()), dict(quarantined[i]),
                        dict(by_kind[i]))
            for i, b in enumerate(batches)]


def _with_oversize(bad: np.ndarray, oversize: np.ndarray, reasons: list[str],
                   details: list[str], limits: Limits) -> tuple[list[str], list[str]]:
    """Reasons and details for the union of invalid and oversized-batch rows, in row order."""
    union = np.flatnonzero(bad | oversize)
    old = dict(zip(np.flatnonzero(bad).tolist(), zip(reasons, details, strict=True),
                   strict=True))
    msg = f"batch has more than {limits.max_batch_events} events"
    out_r, out_d = [], []
    for i in union.tolist():
        r, d = old.get(i, ("", ""))
        if oversize[i]:
            r, d = ("batch_too_large;" + r).rstrip(";"), (msg + "; " + d).rstrip("; ")
        out_r.append(r)
        out_d.append(d)
    return out_r, out_d


def _insert_rows(store: Store, table_name: str, columns: Sequence[str], rows: pa.Table,
                 batches: list[EventBatch], first_no: int) -> None:
    """Insert ``rows`` (with a ``batch_idx`` column) keyed by their batch's device and number,
    keeping their order (batch by batch, as sent)."""
    idx = rows.column("batch_idx").combine_chunks()
    device_ids = pa.array([b.device_id for b in batches])
    keyed = pa.table({
        "device_id": pa.DictionaryArray.from_arrays(idx, device_ids),
        "batch_no": pc.add(idx.cast(pa.int64()), first_no),
        **{c: rows.column(c) for c in columns}}).combine_chunks()
    con = store.con
    con.register("_rows", keyed)
    con.execute(f"INSERT INTO {table_name} SELECT * FROM _rows")
    con.unregister("_rows")
