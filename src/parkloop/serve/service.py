"""What a running server holds: the store (as its only writer), the writer thread, the live
pipeline (:class:`~parkloop.serve.pipeline.Pipeline`: its workers and every device's answer),
the device tokens and the metrics. :mod:`parkloop.serve.app` is the HTTP face of it.

The control thread looks at the registry's champion at most once a second (at once after a
publish through the API). A new champion of the same rules version is loaded here (the
console judges with it) and sent to every worker, which judges everything with it and
switches; a champion of another rules version gets a new pipeline, whose workers replay the
raw log, and it replaces the old one when all have caught up.
"""

from __future__ import annotations

import gc
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
)

from parkloop.config import DEFAULT_RULES
from parkloop.errors import ParkloopError
from parkloop.facts.inputs import raw_watermark
from parkloop.facts.rules import RulesVersion, load_rules
from parkloop.interpret.model import ParkedModel
from parkloop.interpret.registry import Registry
from parkloop.loop.config import load_config
from parkloop.raw.log import StoreResult
from parkloop.serve.ingest import Writer
from parkloop.serve.live import ServedModel
from parkloop.serve.loop import LoopRunner
from parkloop.serve.pipeline import Pipeline, start_forkserver
from parkloop.serve.tokens import TokenBook
from parkloop.store import Store

if TYPE_CHECKING:
    import duckdb

    from parkloop.serve.worker import Took

log = logging.getLogger("parkloop.serve")

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created doubles every series

SWITCH_INTERVAL_S = 0.0005
"""how long a thread may hold the GIL while another waits (Python's default: 5 ms)"""
GC_THRESHOLDS = (100_000, 50, 100)
"""allocations before a young collection, young collections before a middle one, middle ones
before a full one (Python's default: 700, 10, 10)"""
CONTROL_S = 0.1
"""how often the control thread looks at the pipeline (readiness, lag)"""
CHAMPION_POLL_S = 1.0
"""how often the registry is asked for its champion (a publish from the CLI shows up within
this), and how often device tokens are reloaded"""


@dataclass
class ServerMetrics:
    """The server's Prometheus metrics, in a registry of its own."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("parkloop_http_requests", "HTTP requests",
                                ["method", "route", "status"], registry=r)
        self.latency = Histogram(
            "parkloop_http_request_seconds", "HTTP request latency", ["route"], registry=r,
            buckets=(.0005, .001, .002, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5))
        self.batches = Counter("parkloop_batches", "Event batches received, by outcome",
                               ["status"], registry=r)
        self.commit = Histogram("parkloop_commit_seconds",
                                "Time to store one group of batches durably", registry=r,
                                buckets=(.001, .002, .005, .01, .025, .05, .1, .25, .5, 1))
        self.group = Histogram("parkloop_commit_batches", "Batches stored per commit",
                               registry=r, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512))
        self.events = Counter("parkloop_events_ingested", "Events stored, by kind", ["kind"],
                              registry=r)
        self.quarantined = Counter("parkloop_events_quarantined",
                                   "Events quarantined, by reason", ["reason"], registry=r)
        self.facts = Counter("parkloop_facts_emitted", "Final fact rows made live, by table",
                             ["table"], registry=r)
        self.judgements = Counter("parkloop_interpretations_emitted",
                                  "Leg ends judged by the live model", registry=r)
        self.answers = Counter("parkloop_answers_changed", "Car answers that changed",
                               registry=r)
        self.cycle = Histogram("parkloop_pipeline_cycle_seconds",
                               "Time of one live pipeline cycle", registry=r,
                               buckets=(.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30))
        self.lag = Gauge("parkloop_pipeline_lag_batches",
                         "Stored batches the live pipeline has not taken in yet", registry=r)
        self.replaying = Gauge("parkloop_pipeline_worker_replaying",
                               "1 while a pipeline worker replays its shards' raw log",
                               ["worker"], registry=r)
        self.restarts = Gauge("parkloop_pipeline_worker_restarts",
                              "Times a pipeline worker died and was started again",
                              ["worker"], registry=r)
        self.versions = Info("parkloop_serving", "Model and rules versions being served",
                             registry=r)
        self.swaps = Counter("parkloop_model_swaps", "Champions switched in", registry=r)


class Service:
    """A server's state; :meth:`start` before use, :meth:`close` after."""

    def __init__(self, store_path: Path, *, rules: str = DEFAULT_RULES,
                 loop_interval_s: float | None = None, workers: int = 0) -> None:
        """``loop_interval_s``: seconds between loop passes (0: only when asked; None: the
        store's loop.toml); ``workers``: pipeline worker processes (0: one thread)."""
        self.store_path = Path(store_path)
        self.default_rules = rules
        self.metrics = ServerMetrics()
        self.tokens = TokenBook(self.store_path)
        self.registry = Registry(self.store_path)
        self.ready = False
        self.not_ready_reason = "starting: replaying the raw log"
        self.workers = workers
        self.pipeline: Pipeline | None = None
        self._next: Pipeline | None = None
        """a pipeline on new rules, replaying until it replaces :attr:`pipeline`"""
        self.committed = 0
        """the newest batch number the writer has committed"""
        self.signals_committed: int | None = None
        """the newest one holding anything but fixes (None: not known, before this run)"""
        self.started_ms: int | None = None
        self.new_admin_token: str | None = None
        self._store: Store | None = None
        self._writer: Writer | None = None
        self._stop = threading.Event()
        self._check_champion = threading.Event()
        self._thread: threading.Thread | None = None
        self._device_map: dict[bytes, str] = {}
        self._refused: str | None = None
        """a champion found unservable (not tried again until the champion changes)"""
        if loop_interval_s is None:
            loop_interval_s = load_config(self.store_path).schedule.interval_s
        self.loop = LoopRunner(self, loop_interval_s)

    # --- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        # requests, the writer and the feeders share the interpreter lock (and with
        # --workers 0 the pipeline too): a short switch interval hands it back sooner to the
        # event loop between their DuckDB calls
        if self.workers:
            start_forkserver()
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        # under load a request allocates a lot and frees most of it at once; Python's default
        # thresholds then ran collections of the whole heap (the app's modules, the models)
        # often enough to hold every request for 100-200 ms at the 99th percentile. What
        # exists at start is frozen out of collections, and collections run less often.
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        self.started_ms = int(time.time() * 1000)
        self._store = Store.create(self.store_path)
        self.committed = raw_watermark(self._store.con)
        self.signals_committed = self.committed  # whatever is stored may hold any kind
        self.new_admin_token = self.tokens.ensure_admin()
        self._device_map = self.tokens.snapshot()
        self._writer = Writer(self._store, on_commit=self._committed)
        self._thread = threading.Thread(target=self._control, name="parkloop-control",
                                        daemon=True)
        self._thread.start()
        self.loop.start()

    def close(self) -> None:
        self.loop.close()
        if self._writer is not None:
            self._writer.close()
        self._stop.set()
        self._check_champion.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        for pipeline in (self._next, self.pipeline):
            if pipeline is not None:
                pipeline.close()
        if self._store is not None:
            self._store.close()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A cursor of the store's connection, for another thread (close it after)."""
        assert self._store is not None, "Service.start() first"
        return self._store.con.cursor()

    @property
    def writer(self) -> Writer:
        assert self._writer is not None, "Service.start() first"
        return self._writer

    def publish_seen(self) -> None:
        """Look at the registry's champion now (after a publish through the API)."""
        self._check_champion.set()

    # --- auth -----------------------------------------------------------------------------

    def device_of(self, token_digest: bytes, *, recheck: bool = True) -> str | None:
        """The device a token digest belongs to. With ``recheck``, a miss looks at the token
        file's version (microseconds), so a token issued by `parkloop device token` a moment
        ago works at once; a replaced token stops working within :data:`CHAMPION_POLL_S`."""
        device = self._device_map.get(token_digest)
        if device is None and recheck and self.tokens.changed():
            self._device_map = self.tokens.snapshot()
            device = self._device_map.get(token_digest)
        return device

    def device_known(self, device_id: str) -> bool:
        pipeline = self.pipeline
        return (pipeline is not None and pipeline.knows(device_id)) or \
            device_id in self._device_map.values()

    def reload_tokens(self) -> None:
        if self.tokens.changed():
            self._device_map = self.tokens.snapshot()

    # --- the writer's and the workers' callbacks, and the control thread ------------------

    def _committed(self, results: list[StoreResult], seconds: float) -> None:
        m = self.metrics
        m.commit.observe(seconds)
        m.group.observe(len(results))
        committed, signals = self.committed, self.signals_committed
        for r in results:
            m.batches.labels(r.status).inc()
            if r.status == "stored":
                for kind, n in r.stored_by_kind.items():
                    m.events.labels(kind).inc(n)
                for reason, n in r.reasons.items():
                    m.quarantined.labels(reason).inc(n)
                if r.batch_no is not None:
                    committed = max(committed, r.batch_no)
                    if any(n for kind, n in r.stored_by_kind.items() if kind != "fix"):
                        signals = max(signals or 0, r.batch_no)
        # in this order: a feeder that sees the new batches sees whether they hold signals
        self.signals_committed = signals
        self.committed = committed
        for pipeline in (self.pipeline, self._next):
            if pipeline is not None:
                pipeline.wake()

    def _took(self, took: Took) -> None:
        m, report = self.metrics, took.report
        m.cycle.observe(report.seconds)
        for table, n in report.facts.items():
            m.facts.labels(table).inc(n)
        m.judgements.inc(report.judged)
        m.answers.inc(len(report.changed))

    def _control(self) -> None:
        last_check = 0.0
        while not self._stop.is_set():
            try:
                now = time.monotonic()
                if (self.pipeline is None and self._next is None) or \
                        self._check_champion.is_set() or \
                        now - last_check >= CHAMPION_POLL_S:
                    self._check_champion.clear()
                    last_check = now
                    self.reload_tokens()
                    self._follow_champion()
                self._switch_when_ready()
                self._observe()
            except Exception:  # the server must outlive any one bad moment
                log.exception("pipeline control failed; retrying in a second")
                self._stop.wait(1.0)
                continue
            self._check_champion.wait(CONTROL_S)

    def _switch_when_ready(self) -> None:
        fresh = self._next
        if fresh is None or not fresh.ready:
            return
        old, self.pipeline, self._next = self.pipeline, fresh, None
        if old is not None:
            old.close()
        if not self.ready:
            self.ready = True
            log.info("ready: %d devices, raw watermark %d, model %s, rules %s, %s",
                     len(fresh.answers), fresh.watermark, fresh.model_version,
                     fresh.rules.identity, _workers_text(self.workers))

    def _observe(self) -> None:
        pipeline = self.pipeline
        if pipeline is None:
            return
        m = self.metrics
        m.lag.set(max(0, self.committed - pipeline.watermark))
        for w in pipeline.status():
            m.replaying.labels(str(w.worker)).set(w.state == "replaying")
            m.restarts.labels(str(w.worker)).set(w.restarts)

    def _follow_champion(self) -> None:
        """Switch to the registry's champion if it changed: load it beside the one serving,
        and have every worker judge everything with it and switch. A champion that cannot
        be served (its files or its rules version are gone) is logged and the one serving
        stays; at start-up the server then answers "unknown" on the default rules until a
        servable one is published."""
        version = self.registry.summary()["champion"]
        current = self._next or self.pipeline
        if current is not None and version == current.target_version:
            return
        if current is not None and version is not None and version == self._refused:
            return
        try:
            artifacts = None if version is None else self.registry.artifacts(version)
            champion = None if version is None or artifacts is None else ServedModel(
                version, ParkedModel.load(artifacts))
            rules = self._rules_for(champion)
            self._refused = None
        except ParkloopError as exc:
            self._refused = version
            log.error("cannot serve model %s (%s); serving %s instead", version, exc,
                      current.model_version if current else "no model")
            if current is not None:
                return
            champion, artifacts, rules = None, None, load_rules(self.default_rules,
                                                                self.store_path)
        if current is not None and champion is not None and artifacts is not None \
                and rules.identity == current.rules.identity:
            current.use(champion, artifacts)  # each worker judges everything, then switches
        else:
            if self._next is not None:
                self._next.close()
            self._next = Pipeline(self.store_path, rules, champion, artifacts,
                                  workers=self.workers, cursor=self.cursor,
                                  committed=lambda: self.committed,
                                  signals=lambda: self.signals_committed, on_took=self._took)
            self._next.start()
        model_version = champion.version if champion else None
        self.metrics.swaps.inc()
        self.metrics.versions.info({"model_version": str(model_version),
                                    "rules_version": rules.identity})
        log.info("serving model %s on rules %s", model_version, rules.identity)

    def _rules_for(self, champion: ServedModel | None) -> RulesVersion:
        if champion is None:
            return load_rules(self.default_rules, self.store_path)
        name = champion.model.rules_version.split("@", 1)[0]
        rules = load_rules(name, self.store_path)
        if rules.identity != champion.model.rules_version:
            raise ParkloopError(
                f"model {champion.version} was trained on rules {champion.model.rules_version}"
                f", but rules {name!r} are now {rules.identity}")
        return rules


def _workers_text(workers: int) -> str:
    return "the pipeline in a thread" if workers == 0 else f"{workers} pipeline workers"
