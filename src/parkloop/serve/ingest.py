"""Ingestion for the server: batches from many requests are stored together (group commit).

Each request hands its parsed batch to :class:`Writer` and waits; the writer thread takes
whatever has queued up, stores it with one :func:`~parkloop.raw.log.store_batches` call (one
DuckDB transaction, durable when it returns), then resolves every waiting request. Under load a
commit carries many batches, so the per-commit cost is shared; idle, a batch is committed as
soon as it arrives. A request is answered only after its batch is durable: an acknowledged
event is never lost.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING

from parkloop.raw.log import StoreResult, store_batches

if TYPE_CHECKING:
    from parkloop.raw.events import EventBatch
    from parkloop.store import Store

MAX_GROUP = 512
"""batches per commit at most"""
MAX_REJECTS_LISTED = 100
"""rejected events named one by one in a reply (all are counted, and all are quarantined)"""


@dataclass(frozen=True)
class Stored:
    """A batch's outcome, with its rejected events (seq, kind, reason, detail) listed."""

    result: StoreResult
    rejected: list[dict[str, object]]


class Writer:
    """The store's only writer while a server runs: a thread committing queued batches."""

    def __init__(self, store: Store, *, on_commit: Callable[[list[StoreResult], float], None]
                 | None = None) -> None:
        self._store = store
        self._queue: queue.SimpleQueue[tuple[EventBatch, Future[Stored]] | None] = \
            queue.SimpleQueue()
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._run, name="parkloop-writer", daemon=True)
        self._thread.start()

    def submit(self, batch: EventBatch) -> Future[Stored]:
        """Queue a batch; the future resolves once it is durable (or raises what failed)."""
        fut: Future[Stored] = Future()
        self._queue.put((batch, fut))
        return fut

    def close(self) -> None:
        """Commit what is queued, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            group = [item]
            stop = False
            while len(group) < MAX_GROUP:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[tuple[EventBatch, Future[Stored]]]) -> None:
        start = time.perf_counter()
        try:
            results = store_batches(self._store, [b for b, _ in group])
            stored = [Stored(r, self._rejected(r)) for r in results]
        except BaseException as exc:  # the requests report it; the writer carries on
            for _, fut in group:
                fut.set_exception(exc)
            return
        if self._on_commit is not None:
            self._on_commit(results, time.perf_counter() - start)
        for (_, fut), s in zip(group, stored, strict=True):
            fut.set_result(s)

    def _rejected(self, r: StoreResult) -> list[dict[str, object]]:
        if r.status != "stored" or not r.n_quarantined:
            return []
        rows = self._store.con.execute(
            "SELECT seq, kind, reason, detail FROM quarantine WHERE device_id = ? AND "
            "batch_no = ? ORDER BY seq LIMIT ?",
            [r.device_id, r.batch_no, MAX_REJECTS_LISTED]).fetchall()
        return [{"seq": s, "kind": k, "reason": why, "detail": d} for s, k, why, d in rows]
