"""What the API's routes answer, as plain functions of the store and the live pipeline (no
HTTP here: the routes parse, call one of these, and format)."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

import orjson

from parkloop.raw.events import parse_events

if TYPE_CHECKING:
    import duckdb

    from parkloop.serve.ingest import Stored
    from parkloop.serve.live import View

FACT_TIME = {"facts_stop": "started_ms", "facts_leg": "started_ms", "facts_place": "last_ms"}
"""the fact tables the API lists, and the time ``since`` filters them on"""


def feedback_event(said: dict[str, Any], t: int | str) -> tuple[str, dict[str, Any]]:
    """A person's word on an answer (``said``: parked_at, lat, lon, parked, model and rules
    versions; None for unsaid) as a raw ``feedback`` event at ``t``, and the batch id derived
    from what was said (so that saying it again is a duplicate)."""
    event = {"kind": "feedback", "t": t, **{k: v for k, v in said.items() if v is not None}}
    batch_id = "feedback-" + hashlib.sha256(orjson.dumps(
        said, option=orjson.OPT_SORT_KEYS)).hexdigest()[:24]
    return batch_id, event


def stored_feedback(con: duckdb.DuckDBPyConnection, device_id: str, batch_id: str,
                    event: dict[str, Any]) -> dict[str, Any] | None:
    """The reply for feedback stored earlier under ``batch_id`` with the same content but
    another receiving time (a duplicate), or None."""
    row = con.execute("""
        SELECT b.batch_no, b.n_events, f.parked_at_ms, f.lat, f.lon, f.parked,
               f.model_version, f.rules_version
        FROM raw_batch b JOIN raw_feedback f ON f.batch_no = b.batch_no
        WHERE b.device_id = ? AND b.batch_id = ?""", [device_id, batch_id]).fetchone()
    if row is None:
        return None
    parsed = parse_events(device_id, batch_id, [event]).tables["feedback"].to_pylist()[0]
    keys = ("parked_at_ms", "lat", "lon", "parked", "model_version", "rules_version")
    if tuple(row[2:]) != tuple(parsed[k] for k in keys):
        return None
    return {"device_id": device_id, "batch_id": batch_id, "status": "duplicate",
            "batch_no": row[0], "n_events": row[1], "n_stored": 0, "n_quarantined": 0,
            "reasons": {}, "rejected": []}


def store_reply(stored: Stored) -> dict[str, Any]:
    """The answer to a stored batch (:class:`~parkloop.serve.models.EventsOut`)."""
    r = stored.result
    return {"device_id": r.device_id, "batch_id": r.batch_id, "status": r.status,
            "batch_no": r.batch_no, "n_events": r.n_events, "n_stored": r.n_stored,
            "n_quarantined": r.n_quarantined, "reasons": r.reasons,
            "rejected": stored.rejected}


def fact_rows(view: View | None, table: str, since_ms: int | None, limit: int
              ) -> list[dict[str, Any]]:
    """A device's newest ``limit`` rows of ``table`` (one of :data:`FACT_TIME`) in its live
    ``view``, oldest first, each marked ``final`` or not (places never are)."""
    if view is None:
        return []
    if table == "facts_place":
        rows = [dict(r, final=False) for r in view.places.to_pylist()]
    else:
        rows = [dict(r, final=True) for r in view.final[table].to_pylist()] + \
               [dict(r, final=False) for r in view.provisional[table].to_pylist()]
    if since_ms is not None:
        rows = [r for r in rows if r[FACT_TIME[table]] >= since_ms]
    return rows[-limit:]


def judged_rows(judged: list[dict[str, Any]], since_ms: int | None, limit: int
                ) -> list[dict[str, Any]]:
    """A device's newest ``limit`` vehicle-leg ends as the model judged them."""
    return [r for r in judged if since_ms is None or r["ended_ms"] >= since_ms][-limit:]


__all__ = ["FACT_TIME", "fact_rows", "feedback_event", "judged_rows", "store_reply",
           "stored_feedback"]
