"""The live pipeline as the API process runs it: every device's car answer held as bytes, made
by pipeline workers (:mod:`parkloop.serve.worker`) that each own a part of the shard map
(:mod:`parkloop.serve.shards`).

Per worker, two threads of the API process:

- a *feeder* reads the worker's devices' raw rows of the batches committed since its last read
  (at most every :data:`FEED_S`, with at most :data:`MAX_IN_FLIGHT` reads unanswered, so a
  busy worker gets fewer, larger reads) and sends them;
- a *reader* takes the worker's replies: changed answers go into :attr:`Pipeline.answers`,
  which ``GET .../car`` reads without a lock (one dict, updated key by key).

A worker that dies (its connection ends) is started again and replays its shards' raw log
from batch 0; the answers it made before stay served meanwhile, and every other worker goes
on. A publish (:meth:`Pipeline.use`) goes to every worker in its stream of messages, after the
takes sent before it; a worker started later starts on it. So a device's answers never go
back to an older model.

``workers=0`` runs the one worker in a thread of the API process (the same code, queues for
a pipe): no process to start, but it shares the interpreter lock with the requests.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import multiprocessing
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parkloop.facts.inputs import read_batches
from parkloop.interpret.model import LEARNER_MODULES
from parkloop.interpret.parking import CarAnswer
from parkloop.serve.live import answer_json
from parkloop.serve.shards import owned_sql, worker_of
from parkloop.serve.worker import (
    Ask,
    Channel,
    Reply,
    Start,
    Stop,
    Take,
    Took,
    Use,
    Used,
    process_main,
    run,
)

if TYPE_CHECKING:
    import duckdb

    from parkloop.facts.rules import RulesVersion
    from parkloop.serve.live import ServedModel, View

log = logging.getLogger("parkloop.serve")

FEED_S = 0.1
"""a feeder reads new batches at most this often (a read costs the API process one to five
DuckDB queries, 1-2 ms of its interpreter lock each, whatever it holds; the answers follow
within this plus a worker's push)"""
MAX_IN_FLIGHT = 2
"""takes sent to a worker and not answered yet, at most: one being pushed, one waiting"""
ASK_TIMEOUT_S = 30.0
"""how long a facts route waits for a worker (behind a replay, say)"""
RESTART_BACKOFF_S = (0.0, 1.0, 5.0, 30.0)
"""the wait before restarting a worker that died, by how many times it died in a row"""


@dataclass(frozen=True)
class WorkerStatus:
    """One worker as ``/readyz`` shows it."""

    worker: int
    pid: int | None
    state: str
    """``replaying`` (taking in its shards' raw log after a start) or ``serving``"""
    raw_watermark: int
    restarts: int


class Pipeline:
    """The answers of every device under one rules version, and the workers that make them.

    ``cursor`` gives a cursor of the store's connection (one per feeder thread);
    ``committed`` the newest batch stored, ``signals`` the newest one holding anything but
    fixes (None: not known); ``on_took`` sees every worker report."""

    def __init__(self, store: Path, rules: RulesVersion, champion: ServedModel | None,
                 artifacts: Path | None, *, workers: int,
                 cursor: Callable[[], duckdb.DuckDBPyConnection],
                 committed: Callable[[], int],
                 signals: Callable[[], int | None] = lambda: None,
                 on_took: Callable[[Took], None] | None = None) -> None:
        if workers < 0:
            raise ValueError("workers must be 0 (a thread) or more processes")
        self.store = store
        self.rules = rules
        self.champion = champion
        """the model every worker serves (the newest one, once all switched to it)"""
        self.answers: dict[str, bytes] = {}
        """device -> its car answer as JSON bytes (what ``GET .../car`` returns)"""
        self._target = None if champion is None or artifacts is None else \
            (champion.version, artifacts)
        self._next_champion = champion
        self._cursor = cursor
        self._committed = committed
        self._signals = signals
        self._on_took = on_took
        self._closing = threading.Event()
        self._requests = itertools.count()
        self._workers = [_WorkerHandle(self, i, max(workers, 1), process=workers > 0)
                         for i in range(max(workers, 1))]

    def start(self) -> None:
        for w in self._workers:
            w.start()

    # --- reading (any thread) -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Every worker has taken in the raw log stored when it (first) started."""
        return all(w.caught_up_once for w in self._workers)

    @property
    def watermark(self) -> int:
        """The newest raw batch every answer includes."""
        return min(w.watermark for w in self._workers)

    @property
    def model_version(self) -> str | None:
        return None if self.champion is None else self.champion.version

    @property
    def target_version(self) -> str | None:
        """The champion the workers were last told to serve."""
        return None if self._target is None else self._target[0]

    def knows(self, device_id: str) -> bool:
        return device_id in self.answers

    def unknown_answer(self, device_id: str) -> bytes:
        """The answer for a device with no data yet."""
        why = "no data from this device yet" if self.champion else "no model is published yet"
        return answer_json(CarAnswer(device_id, "unknown", None, None, None, None,
                                     self.model_version, self.rules.identity, why), None)

    def view(self, device_id: str) -> Future[View | None]:
        """The device's live facts, from the worker that owns it."""
        return self._ask("view", device_id)

    def judged(self, device_id: str) -> Future[list[dict[str, Any]]]:
        """The device's judged leg ends, from the worker that owns it."""
        return self._ask("judged", device_id)

    def status(self) -> list[WorkerStatus]:
        return [w.status() for w in self._workers]

    @property
    def shards_map(self) -> str:
        n = len(self._workers)
        return "all shards" if n == 1 else f"shard % {n}"

    # --- control (the service's control thread) -------------------------------------------

    def wake(self) -> None:
        """New batches are stored."""
        for w in self._workers:
            w.wake.set()

    def use(self, champion: ServedModel, artifacts: Path) -> None:
        """Switch every worker to ``champion`` (of the same rules version); :attr:`champion`
        follows once all have."""
        if champion.model.rules_version != self.rules.identity:
            raise ValueError("a champion of another rules version needs a new Pipeline")
        self._target = (champion.version, artifacts)
        self._next_champion = champion
        for w in self._workers:
            w.send(Use(champion.version, artifacts))

    def close(self) -> None:
        self._closing.set()
        for w in self._workers:
            w.stop()

    # --- internals ------------------------------------------------------------------------

    def _ask(self, what: str, device_id: str) -> Future[Any]:
        worker = self._workers[worker_of(device_id, len(self._workers))]
        return worker.ask(next(self._requests), what, device_id)

    def _served(self, worker: _WorkerHandle, version: str | None) -> None:
        """``worker`` now serves ``version``: switch :attr:`champion` once all do."""
        worker.version = version
        target = self._next_champion
        if target is not None and all(w.version == target.version for w in self._workers):
            self.champion = target


class _WorkerHandle:
    """One worker, as the API process sees it: its process (or thread), feeder and reader."""

    def __init__(self, pipeline: Pipeline, index: int, workers: int, *, process: bool) -> None:
        self.pipeline = pipeline
        self.index = index
        self.workers = workers
        self.process = process
        self.wake = threading.Event()
        self.watermark = 0
        """the newest raw batch its answers include"""
        self.version: str | None = None
        self.caught_up_once = False
        self.replaying = True
        """taking in its shards' raw log after a (re)start"""
        self.restarts = 0
        self._deaths_in_a_row = 0
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._sent = 0
        self._in_flight = 0
        self._replay_until = 0
        self._generation = 0
        self._pending: dict[int, Future[Any]] = {}
        self._channel: Channel | None = None
        self._proc: Any = None
        self._threads: list[threading.Thread] = []

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        self._launch()
        for name, target in (("feeder", self._feed), ("reader", self._read)):
            t = threading.Thread(target=target, name=f"parkloop-{name}-{self.index}",
                                 daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self) -> None:
        self.wake.set()
        with contextlib.suppress(OSError):
            self.send(Stop())
        proc = self._proc
        if proc is not None:
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
        for t in self._threads:
            t.join(timeout=10)

    def _launch(self) -> None:
        """Start the worker (again): it replays its shards from batch 0."""
        p = self.pipeline
        start = Start(self.index, self.workers, p.store, p.rules.identity, p._target)
        with self._lock:
            self._generation += 1
            self._sent = 0
            self._in_flight = 0
            self._replay_until = p._committed()
            self.watermark = 0
            self.replaying = True
            self.version = None if p._target is None else p._target[0]
            if self.process:
                ctx = _context()
                mine, theirs = ctx.Pipe()
                proc = ctx.Process(target=process_main, args=(theirs, start),
                                   name=f"parkloop-worker-{self.index}", daemon=True)
                proc.start()
                theirs.close()
                self._channel, self._proc = mine, proc
            else:
                to_worker: queue.SimpleQueue[Any] = queue.SimpleQueue()
                from_worker: queue.SimpleQueue[Any] = queue.SimpleQueue()
                worker_end = _Queues(to_worker, from_worker)
                thread = threading.Thread(target=_thread_main, args=(worker_end, start),
                                          name="parkloop-worker", daemon=True)
                self._channel = _Queues(from_worker, to_worker)
                thread.start()
        self._check_caught_up()
        self.wake.set()

    def _check_caught_up(self) -> None:
        if self.replaying and self.watermark >= self._replay_until:
            self.replaying = False
            self.caught_up_once = True

    def status(self) -> WorkerStatus:
        pid = self._proc.pid if self._proc is not None else None
        return WorkerStatus(self.index, pid, "replaying" if self.replaying else "serving",
                            self.watermark, self.restarts)

    # --- talking to it --------------------------------------------------------------------

    def send(self, message: Any) -> None:
        channel = self._channel
        if channel is None:
            raise OSError("worker not started")
        with self._send_lock:
            channel.send(message)

    def ask(self, request: int, what: str, device_id: str) -> Future[Any]:
        fut: Future[Any] = Future()
        with self._lock:
            self._pending[request] = fut
        try:
            self.send(Ask(request, what, device_id))
        except OSError:
            with self._lock:
                self._pending.pop(request, None)
            fut.set_exception(TimeoutError("the device's pipeline worker is restarting"))
        return fut

    def _feed(self) -> None:
        con = self.pipeline._cursor()
        devices = owned_sql(self.index, self.workers)
        last = 0.0
        try:
            while not self.pipeline._closing.is_set():
                self.wake.wait(timeout=1.0)
                self.wake.clear()
                rest = FEED_S - (time.monotonic() - last)
                if rest > 0 and self.pipeline._closing.wait(rest):
                    return
                with self._lock:
                    if self._in_flight >= MAX_IN_FLIGHT:
                        continue
                    lo, generation = self._sent, self._generation
                hi = self.pipeline._committed()
                if hi <= lo:
                    continue
                last = time.monotonic()
                newest_signal = self.pipeline._signals()
                try:
                    fixes, signals = read_batches(
                        con, lo, hi, devices=devices,
                        signals=newest_signal is None or newest_signal > lo)
                except Exception:  # the store is closing, or a bad moment: try again
                    log.exception("worker %d: reading batches %d..%d failed", self.index,
                                  lo + 1, hi)
                    self.pipeline._closing.wait(1.0)
                    self.wake.set()
                    continue
                with self._lock:
                    if generation != self._generation:  # restarted meanwhile: read again
                        self.wake.set()
                        continue
                    self._sent = hi
                    self._in_flight += 1
                with contextlib.suppress(OSError):  # it died: the reader restarts it
                    self.send(Take(hi, fixes, signals))
        finally:
            con.close()

    def _read(self) -> None:
        while True:
            channel = self._channel
            assert channel is not None
            try:
                message = channel.recv()
            except (EOFError, OSError):
                if self.pipeline._closing.is_set():
                    return
                self._died()
                continue
            self._deaths_in_a_row = 0
            if isinstance(message, Took):
                self.pipeline.answers.update(message.answers)
                with self._lock:
                    self._in_flight = max(0, self._in_flight - message.takes)
                self.watermark = max(self.watermark, message.report.upto)
                self._check_caught_up()
                if self.pipeline._on_took is not None:
                    self.pipeline._on_took(message)
                self.wake.set()
            elif isinstance(message, Used):
                self.pipeline.answers.update(message.answers)
                self.pipeline._served(self, message.version)
            elif isinstance(message, Reply):
                with self._lock:
                    fut = self._pending.pop(message.request, None)
                if fut is not None:
                    fut.set_result(message.value)

    def _died(self) -> None:
        if self._proc is not None:
            self._proc.join(timeout=5)
        code = self._proc.exitcode if self._proc is not None else None
        self.restarts += 1
        wait = RESTART_BACKOFF_S[min(self._deaths_in_a_row, len(RESTART_BACKOFF_S) - 1)]
        self._deaths_in_a_row += 1
        log.error("pipeline worker %d ended (exit code %s); restarting it%s to replay its "
                  "shards", self.index, code, f" in {wait:.0f} s" if wait else "")
        with self._lock:
            pending, self._pending = self._pending, {}
        for fut in pending.values():
            fut.set_exception(TimeoutError("the device's pipeline worker restarted"))
        if wait and self.pipeline._closing.wait(wait):
            return
        self._launch()


class _Queues:
    """A worker thread's channel: a pair of queues in place of a pipe."""

    def __init__(self, inbox: queue.SimpleQueue[Any], outbox: queue.SimpleQueue[Any]) -> None:
        self._inbox, self._outbox = inbox, outbox

    def send(self, obj: Any) -> None:
        self._outbox.put(obj)

    def recv(self) -> Any:
        obj = self._inbox.get()
        if obj is _CLOSED:
            raise EOFError
        return obj

    def poll(self, timeout: float | None = 0.0) -> bool:
        return not self._inbox.empty()


_CLOSED = object()


def _thread_main(channel: _Queues, start: Start) -> None:
    try:
        run(channel, start)
    except Exception:
        log.exception("the pipeline worker thread failed")
    finally:
        channel.send(_CLOSED)  # the reader sees the end as it sees a process's


_CONTEXT: Any = None


def start_forkserver() -> None:
    """Start the process workers fork from now, so that its imports (about 3 s) run while
    the server starts rather than before the first worker."""
    _context()
    from multiprocessing import forkserver

    forkserver.ensure_running()


def _context() -> Any:
    """Workers fork from a server process that imported the pipeline's modules and those a
    learned model needs once (``forkserver``), so a restart takes a fork, not an interpreter
    start and imports (about 4 s here)."""
    global _CONTEXT
    if _CONTEXT is None:
        _CONTEXT = multiprocessing.get_context("forkserver")
        _CONTEXT.set_forkserver_preload(["parkloop.serve.worker", *LEARNER_MODULES])
    return _CONTEXT


__all__ = ["ASK_TIMEOUT_S", "FEED_S", "Pipeline", "WorkerStatus", "start_forkserver"]
