"""Batching and transport faults."""

from __future__ import annotations

import re
from collections import Counter

import numpy as np
import pyarrow as pa

from parkloop.simulate.scenarios import Uploads
from parkloop.simulate.upload import send

T0 = 1_741_000_000_000
DAY_MS = 86_400_000


def _sensors() -> dict[str, pa.Table]:
    t = T0 + np.arange(0, 2 * DAY_MS, 5_000, dtype=np.int64)
    a = T0 + np.arange(30_000, 2 * DAY_MS, 60_000, dtype=np.int64)
    return {
        "fix": pa.table({"t_ms": t, "lat": np.full(len(t), 48.1), "lon": np.full(len(t), 11.5)}),
        "activity": pa.table({"t_ms": a, "activity": ["still"] * len(a),
                              "confidence": np.full(len(a), 0.9)}),
        "vehicle_link": pa.table({"t_ms": pa.array([T0 + 1000], pa.int64()),
                                  "connected": [True], "link": ["bluetooth"],
                                  "vehicle": ["bt-1"]}),
    }


LABELS = pa.table({"t_ms": pa.array([T0 + 4_000_000], pa.int64()),
                   "start_ms": pa.array([T0], pa.int64()),
                   "end_ms": pa.array([T0 + 600_000], pa.int64()), "mode": ["car"]})


def test_batches_carry_every_event_once_in_time_ordered_seq() -> None:
    quiet = Uploads(duplicate_prob=0.0, resend_prob=0.0, delay_prob=0.0)
    sent = send("dev-1", _sensors(), LABELS, quiet, np.random.default_rng(0))
    ids = [b.batch_id for b in sent.batches]
    assert sorted(ids) == sorted(b.batch_id for b in sent.unique)
    assert sent.duplicate_sends == 0
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"2025030[345]-(\d{4}|label-\d{2})", i) for i in ids)
    total = Counter[str]()
    for b in sent.batches:
        seq = np.concatenate([np.asarray(t.column("seq")) for t in b.tables.values()])
        t = np.concatenate([np.asarray(t.column("t_ms")) for t in b.tables.values()])
        assert sorted(seq.tolist()) == list(range(b.n_events))
        assert np.all(np.diff(t[np.argsort(seq)]) >= 0)
        total.update({k: v.num_rows for k, v in b.tables.items()})
    assert total == {"fix": 2 * DAY_MS // 5_000, "activity": 2 * 1440, "vehicle_link": 1,
                     "label": 1}
    label_batches = [b for b in sent.batches if "label" in b.tables]
    assert len(label_batches) == 1
    assert set(label_batches[0].tables) == {"label"}
    spans = [max(np.asarray(t.column("t_ms")).max() for t in b.tables.values())
             - min(np.asarray(t.column("t_ms")).min() for t in b.tables.values())
             for b in sent.batches if "fix" in b.tables]
    assert max(spans) <= 1_200_000


def test_faults_duplicate_resend_and_reorder() -> None:
    faulty = Uploads(duplicate_prob=0.2, resend_prob=0.2, delay_prob=0.2)
    sent = send("dev-1", _sensors(), LABELS, faulty, np.random.default_rng(1))
    assert sent.duplicate_sends == len(sent.batches) - len(sent.unique) > 0
    ids = Counter(b.batch_id for b in sent.batches)
    assert sum(n - 1 for n in ids.values()) == sent.duplicate_sends
    fix_t = np.concatenate([np.asarray(b.tables["fix"].column("t_ms")) for b in sent.unique
                            if "fix" in b.tables])
    assert len(fix_t) > len(np.unique(fix_t))  # re-sent fixes under other batch ids
    first = [min(np.asarray(t.column("t_ms")).min() for t in b.tables.values())
             for b in sent.batches]
    assert any(np.diff(first) < 0)  # later data arrived before earlier data
