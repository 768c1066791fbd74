"""The closed loop inside a running server: a pass every ``interval_s``, or when asked.

A pass runs in a worker process (:mod:`parkloop.loop.worker`) over a mirror of the raw log
(:mod:`parkloop.loop.mirror`): the server only copies the new raw batches into the mirror,
which DuckDB does without Python, so requests keep their interpreter and the worker runs at
a lower CPU priority. A publish or rollback by the pass goes through the registry, where the
control thread finds it within a second and swaps the champion in (no failed request).
A worker that dies leaves the champion serving; the server records why in the audit log.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parkloop.loop import audit
from parkloop.loop.config import HIGH_IS_BAD
from parkloop.loop.mirror import sync_mirror

if TYPE_CHECKING:
    import duckdb
    from prometheus_client import CollectorRegistry


class _Metrics(Protocol):
    @property
    def registry(self) -> CollectorRegistry: ...


class LoopHost(Protocol):
    """What the loop needs of the server it runs in (:class:`parkloop.serve.service.Service`)."""

    @property
    def store_path(self) -> Path: ...

    @property
    def metrics(self) -> _Metrics: ...

    @property
    def ready(self) -> bool: ...

    def cursor(self) -> duckdb.DuckDBPyConnection: ...

    def publish_seen(self) -> None: ...

log = logging.getLogger("parkloop.loop")

WORKER_TIMEOUT_S = 3600.0
"""a pass taking longer than this is stopped (and recorded as failed)"""


class LoopRunner:
    """Runs loop passes for ``service``: every ``interval_s`` (never, if 0) and on
    :meth:`trigger`; one at a time."""

    def __init__(self, service: LoopHost, interval_s: float) -> None:
        self.service = service
        self.interval_s = interval_s
        self.running = False
        self.last: dict[str, Any] | None = None
        self._asked = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._worker: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._run, name="parkloop-loop", daemon=True)
        m = service.metrics
        from prometheus_client import Counter, Gauge, Histogram

        self._passes = Counter("parkloop_loop_passes", "Loop passes, by decision",
                               ["decision"], registry=m.registry)
        self._seconds = Histogram("parkloop_loop_pass_seconds", "Time of one loop pass",
                                  registry=m.registry,
                                  buckets=(1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000))
        self._value = Gauge("parkloop_loop_monitor_value", "Each monitor's latest value",
                            ["monitor"], registry=m.registry)
        self._alarm = Gauge("parkloop_loop_monitor_alarm", "1 while a monitor is in alarm",
                            ["monitor"], registry=m.registry)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._asked.set()
        with self._lock:
            if self._worker is not None and self._worker.poll() is None:
                self._worker.kill()
        self._thread.join(timeout=30)

    def trigger(self) -> bool:
        """Ask for a pass now; False if one is running (it will not be queued twice)."""
        if self.running:
            return False
        self._asked.set()
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self._asked.wait(self.interval_s or None)
            self._asked.clear()
            if self._stop.is_set():
                return
            if not self.service.ready:
                continue
            self.running = True
            try:
                self.run_once()
            except Exception:  # a loop bug must not take the server down
                log.exception("loop pass failed")
            finally:
                self.running = False

    def run_once(self) -> dict[str, Any]:
        """Sync the mirror, run one pass in a worker, record and report it."""
        started = time.perf_counter()
        store_path = self.service.store_path
        con = self.service.cursor()
        try:
            _, copied = sync_mirror(con, store_path)
        finally:
            con.close()
        log.info("loop pass: %d new raw batches mirrored in %.2f s", copied,
                 time.perf_counter() - started)
        with self._lock:
            if self._stop.is_set():
                return {}
            self._worker = subprocess.Popen(
                [sys.executable, "-m", "parkloop.loop.worker", str(store_path)],
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            stdout, stderr = self._worker.communicate(timeout=WORKER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self._worker.kill()
            stdout, stderr = self._worker.communicate()
            stderr = f"stopped after {WORKER_TIMEOUT_S:.0f} s\n{stderr}"
        code = self._worker.returncode
        record = _last_json(stdout) if code == 0 else None
        if record is None and self._stop.is_set():  # killed by close(): not a failure
            record = {"at_ms": int(time.time() * 1000), "actor": "server",
                      "decision": "stopped", "reason": "the server stopped during the pass",
                      "seconds": round(time.perf_counter() - started, 3)}
        elif record is None:
            why = (stderr.strip().splitlines() or [f"exit status {code}"])[-1]
            record = {"at_ms": int(time.time() * 1000), "actor": "server",
                      "decision": "failed", "reason": f"the loop worker failed ({why}); the "
                      "champion keeps serving", "seconds": round(
                          time.perf_counter() - started, 3)}
            audit.append(store_path, record)
        self._report(record, time.perf_counter() - started)
        return record

    def _report(self, record: dict[str, Any], seconds: float) -> None:
        self.last = record
        self._passes.labels(record["decision"]).inc()
        self._seconds.observe(seconds)
        for name in HIGH_IS_BAD:
            m = record.get("monitors", {}).get(name)
            if m is not None:
                if m["value"] is not None:
                    self._value.labels(name).set(m["value"])
                self._alarm.labels(name).set(1 if m["alarm"] else 0)
        log.info("loop pass: %s (%s) in %.1f s", record["decision"], record["reason"], seconds)
        if record["decision"] in ("published", "rolled_back"):
            self.service.publish_seen()


def _last_json(stdout: str) -> dict[str, Any] | None:
    for line in reversed(stdout.strip().splitlines()):
        try:
            found = json.loads(line)
        except json.JSONDecodeError:
            continue
        return found if isinstance(found, dict) else None
    return None
