"""A held-out person speaking through the product, from their own labels.

The warm-versus-cold experiment through the product's path (tests/loop/test_personal.py on
simulated people, bench/personal.py on GeoLife) lets people the champion never saw say what
their labels say: their early label events as `parkloop import events` batches
(:func:`label_lines`), and their word on their early cold answers as the feedback API's
bodies (:func:`feedback`, judged by :func:`said_parked`); the answers are read back from
`parkloop export parked` (:func:`read_parked`).

>>> early = [("d", 0, 0, 600_000, "car"), ("d", 0, 900_000, 3_600_000, "walk")]
>>> said_parked(early, "d", 700_000), said_parked(early, "d", 2_000_000)
(True, False)
>>> said_parked(early, "d", 9_000_000) is None
True
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pyarrow as pa

__all__ = ["NEAR_MS", "Label", "feedback", "label_lines", "read_parked", "said_parked"]

NEAR_MS = 300_000
"""an answer this near a labelled segment's end is about that segment, ms"""
Label = tuple[str, int, int, int, str]
"""device, said at, start, end, mode (ms)"""


def said_parked(early: list[Label], device: str, t_ms: int) -> bool | None:
    """What the person answers about a parking answer at ``t_ms``, from what they labelled:
    yes near a car segment's end, no near another mode's end or inside its span, None where
    no label of theirs reaches."""
    for d, _, _, end, mode in early:
        if d == device and abs(end - t_ms) <= NEAR_MS:
            return mode == "car"
    if any(d == device and start < t_ms < end and mode != "car"
           for d, _, start, end, mode in early):
        return False
    return None


def label_lines(labels: list[Label], part: str) -> str:
    """Label events as JSON Lines batches (the REST API's batch format), one a device."""
    out = []
    for device in sorted({d for d, *_ in labels}):
        events = [{"kind": "label", "t": t, "start": s, "end": e, "mode": m}
                  for d, t, s, e, m in labels if d == device]
        out.append(json.dumps({"device_id": device, "batch_id": f"labels-{part}",
                               "events": events}))
    return "\n".join(out) + "\n"


def feedback(answers: pa.Table, early: list[Label], device: str, cutoff_ms: int
             ) -> Iterator[dict[str, object]]:
    """The bodies of ``POST /v1/devices/{device}/feedback``: the person's word on each of
    their answers (as :func:`read_parked` reads them) up to ``cutoff_ms`` that a label of
    theirs speaks about, said an hour after it."""
    for row in answers.to_pylist():
        if row["device_id"] != device or row["t_ms"] > cutoff_ms:
            continue
        right = said_parked(early, device, row["t_ms"])
        if right is None:
            continue  # in time nobody labelled: the person's word is not known
        yield {"parked_at": row["t_ms"], "lat": row["lat"], "lon": row["lon"],
               "parked": right, "t": row["t_ms"] + 3_600_000}


def read_parked(path: Path) -> pa.Table:
    """`parkloop export parked`'s CSV as events: device_id, t_ms, lat, lon."""
    with path.open() as fh:
        rows = list(csv.DictReader(fh))
    return pa.table({
        "device_id": pa.array([r["device_id"] for r in rows], pa.string()),
        "t_ms": pa.array([int(datetime.fromisoformat(r["parked_at"]).timestamp() * 1000)
                          for r in rows], pa.int64()),
        "lat": pa.array([float(r["lat"]) for r in rows], pa.float64()),
        "lon": pa.array([float(r["lon"]) for r in rows], pa.float64())})
