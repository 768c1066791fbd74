"""What a running server holds: the store (as its only writer), the writer thread, the live
pipeline thread, the device tokens and the metrics. :mod:`parkloop.serve.app` is the HTTP
face of it.

The pipeline thread loops: take in what the writer committed (woken by each commit), and at
most once a second look at the registry's champion. A new champion is loaded and warmed in
that thread, beside the old one, which keeps answering until the switch; a champion of
another rules version gets a new :class:`~parkloop.serve.live.Live`, built by replaying the
raw log, and replaces the old one when it has caught up.
"""

from __future__ import annotations

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

from parkloop.errors import ParkloopError
from parkloop.facts.inputs import raw_watermark
from parkloop.facts.rules import DEFAULT_RULES, RulesVersion, load_rules
from parkloop.interpret.model import ParkedModel
from parkloop.interpret.registry import Registry
from parkloop.loop.config import load_config
from parkloop.raw.log import StoreResult
from parkloop.serve.ingest import Writer
from parkloop.serve.live import Live, ServedModel
from parkloop.serve.loop import LoopRunner
from parkloop.serve.tokens import TokenBook
from parkloop.store import Store

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger("parkloop.serve")

disable_created_metrics()  # type: ignore[no-untyped-call]  # *_created doubles every series

CYCLE_S = 0.2
"""the live pipeline takes in new batches at most this often: a push reruns a device's open
tail (about 10 ms, mostly fixed cost), so batches arriving together share one push"""
PIPELINE_SHARE = 0.5
"""under load, the pipeline rests as long as its last cycle took over (1 - share) / share:
it shares the GIL with the requests and the writer, so this keeps ingestion going at the
cost of fresher answers (a cycle covers every device that sent something meanwhile)"""
SWITCH_INTERVAL_S = 0.0005
"""how long a thread may hold the GIL while another waits (Python's default: 5 ms)"""
MAX_REST_S = 2.0
"""the longest rest (after a long replay, say)"""
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
        self.versions = Info("parkloop_serving", "Model and rules versions being served",
                             registry=r)
        self.swaps = Counter("parkloop_model_swaps", "Champions switched in", registry=r)


class Service:
    """A server's state; :meth:`start` before use, :meth:`close` after."""

    def __init__(self, store_path: Path, *, rules: str = DEFAULT_RULES,
                 loop_interval_s: float | None = None) -> None:
        """``loop_interval_s``: seconds between loop passes (0: only when asked; None: the
        store's loop.toml)."""
        self.store_path = Path(store_path)
        self.default_rules = rules
        self.metrics = ServerMetrics()
        self.tokens = TokenBook(self.store_path)
        self.registry = Registry(self.store_path)
        self.ready = False
        self.not_ready_reason = "starting: replaying the raw log"
        self.live: Live | None = None
        self.committed = 0
        """the newest batch number the writer has committed"""
        self.started_ms: int | None = None
        self.new_admin_token: str | None = None
        self._store: Store | None = None
        self._writer: Writer | None = None
        self._wake = threading.Event()
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
        # the pipeline thread runs long stretches of Python: a short switch interval hands the
        # GIL back sooner to requests and to the writer between its DuckDB calls (measured
        # under ingestion load, commits still took 60-70 ms against 12 ms alone: the lock is
        # contended, see docs/serving.md)
        sys.setswitchinterval(SWITCH_INTERVAL_S)
        self.started_ms = int(time.time() * 1000)
        self._store = Store.create(self.store_path)
        self.committed = raw_watermark(self._store.con)
        self.new_admin_token = self.tokens.ensure_admin()
        self._device_map = self.tokens.snapshot()
        self._writer = Writer(self._store, on_commit=self._committed)
        self._thread = threading.Thread(target=self._pipeline, name="parkloop-pipeline",
                                        daemon=True)
        self._thread.start()
        self.loop.start()

    def close(self) -> None:
        self.loop.close()
        if self._writer is not None:
            self._writer.close()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
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
        self._wake.set()

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
        live = self.live
        return (live is not None and live.knows(device_id)) or \
            device_id in self._device_map.values()

    def reload_tokens(self) -> None:
        if self.tokens.changed():
            self._device_map = self.tokens.snapshot()

    # --- the writer's callback and the pipeline thread ------------------------------------

    def _committed(self, results: list[StoreResult], seconds: float) -> None:
        m = self.metrics
        m.commit.observe(seconds)
        m.group.observe(len(results))
        for r in results:
            m.batches.labels(r.status).inc()
            if r.status == "stored":
                for kind, n in r.stored_by_kind.items():
                    m.events.labels(kind).inc(n)
                for reason, n in r.reasons.items():
                    m.quarantined.labels(reason).inc(n)
                if r.batch_no is not None:
                    self.committed = max(self.committed, r.batch_no)
        self._wake.set()

    def _pipeline(self) -> None:
        assert self._store is not None
        con = self._store.con.cursor()
        last_check = 0.0
        while not self._stop.is_set():
            cycle_start = time.monotonic()
            try:
                now = cycle_start
                if self.live is None or self._check_champion.is_set() or \
                        now - last_check >= CHAMPION_POLL_S:
                    self._check_champion.clear()
                    last_check = now
                    self.reload_tokens()
                    self._follow_champion(con)
                live = self.live
                assert live is not None
                report = live.catch_up(con)
                if report.batches:
                    m = self.metrics
                    m.cycle.observe(report.seconds)
                    for table, n in report.facts.items():
                        m.facts.labels(table).inc(n)
                    m.judgements.inc(report.judged)
                    m.answers.inc(report.answers_changed)
                self.metrics.lag.set(max(0, self.committed - live.watermark))
                if not self.ready:
                    self.ready = True
                    log.info("ready: %d devices, raw watermark %d, model %s, rules %s",
                             len(live.devices()), live.watermark, live.model_version,
                             live.rules.identity)
            except Exception:  # the pipeline must outlive any one bad cycle
                log.exception("live pipeline cycle failed; retrying in a second")
                self._stop.wait(1.0)
                continue
            took = time.monotonic() - cycle_start
            rest = max(CYCLE_S - took,
                       min(took * (1 - PIPELINE_SHARE) / PIPELINE_SHARE, MAX_REST_S))
            self._stop.wait(rest)
            self._wake.wait(timeout=CHAMPION_POLL_S)
            self._wake.clear()

    def _follow_champion(self, con: object) -> None:
        """Switch to the registry's champion if it changed: load it beside the one serving,
        judge everything with it, then switch. A champion that cannot be served (its files
        or its rules version are gone) is logged and the one serving stays; at start-up the
        server then answers "unknown" on the default rules until a servable one is
        published."""
        version = self.registry.summary()["champion"]
        live = self.live
        if live is not None and version == live.model_version:
            return
        if live is not None and version is not None and version == self._refused:
            return
        try:
            champion = None if version is None else ServedModel(
                version, ParkedModel.load(self.registry.artifacts(version)))
            rules = self._rules_for(champion)
            self._refused = None
        except ParkloopError as exc:
            self._refused = version
            log.error("cannot serve model %s (%s); serving %s instead", version, exc,
                      live.model_version if live else "no model")
            if live is not None:
                return
            champion, rules = None, load_rules(self.default_rules, self.store_path)
        if live is not None and champion is not None and \
                rules.identity == live.rules.identity:
            live.use(champion)  # judges everything with the new model, then switches
        else:
            fresh = Live(rules, champion)
            fresh.catch_up(con)  # type: ignore[arg-type]
            self.live = fresh
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
