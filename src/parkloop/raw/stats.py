"""What the raw layer holds: counts for ``parkloop status`` and the monitors."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

from parkloop.raw.schema import KINDS

if TYPE_CHECKING:
    import duckdb

    from parkloop.store import Store


def raw_watermark(con: duckdb.DuckDBPyConnection) -> int:
    """The newest raw batch number (0 before the first): facts built now reflect every batch
    up to it."""
    return int(con.execute("SELECT coalesce(max(batch_no), 0) FROM raw_batch").fetchall()[0][0])


def raw_counts(store: Store) -> dict[str, Any]:
    """Events by kind, batches, devices, quarantined events (in all and by reason code), and
    the raw watermark (the newest batch number). An event quarantined for several reasons is
    counted once in ``quarantined`` and once under each of its reasons."""
    con = store.con
    events = {k.name: int(store.scalar(f"SELECT count(*) FROM {k.table}")) for k in KINDS}
    by_reason: Counter[str] = Counter()
    for reasons, n in con.execute(
            "SELECT reason, count(*) FROM quarantine GROUP BY reason").fetchall():
        for code in reasons.split(";"):
            by_reason[code] += n
    union = " UNION ".join(f"SELECT DISTINCT device_id FROM {k.table}" for k in KINDS)
    return {
        "events": events,
        "batches": int(store.scalar("SELECT count(*) FROM raw_batch")),
        "devices": int(store.scalar(f"SELECT count(*) FROM ({union})")),
        "quarantined": int(store.scalar("SELECT count(*) FROM quarantine")),
        "quarantined_by_reason": dict(sorted(by_reason.items(), key=lambda kv: (-kv[1], kv[0]))),
        "watermark": raw_watermark(con),
    }


def quarantined_events(store: Store, *, device_id: str | None = None, reason: str | None = None,
                       limit: int = 50) -> list[dict[str, Any]]:
    """The newest quarantined events (optionally of one device or with one reason code), with
    their batch, position, reasons, source and what was sent."""
    where, params = [], []
    if device_id is not None:
        where.append("q.device_id = ?")
        params.append(device_id)
    if reason is not None:
        where.append("list_contains(string_split(q.reason, ';'), ?)")
        params.append(reason)
    sql = f"""SELECT q.device_id, b.batch_id, q.batch_no, q.seq, q.kind, q.reason, q.detail,
                     q.source_ref, q.payload
              FROM quarantine q JOIN raw_batch b USING (batch_no)
              {"WHERE " + " AND ".join(where) if where else ""}
              ORDER BY q.batch_no DESC, q.seq LIMIT ?"""
    cur = store.con.execute(sql, [*params, limit])
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
