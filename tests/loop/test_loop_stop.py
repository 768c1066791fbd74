"""A loop pass the server stops is neither a failure nor in the audit log."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from prometheus_client import CollectorRegistry

from parkloop.loop import audit
from parkloop.serve.loop import LoopRunner
from parkloop.store import Store


@dataclass
class _Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)


@dataclass
class _Host:
    """What a server gives its loop: a real store, a metrics registry."""

    store: Store
    metrics: _Metrics = field(default_factory=_Metrics)
    ready: bool = True

    @property
    def store_path(self) -> Path:
        return self.store.path

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.store.con.cursor()

    def publish_seen(self) -> None:
        pass


def test_a_pass_stopped_by_the_server_is_recorded_as_stopped_not_failed(
        tmp_path: Path) -> None:
    with Store.create(tmp_path / "store") as store:
        runner = LoopRunner(_Host(store), interval_s=0)
        runner.start()
        got: dict[str, Any] = {}
        passing = threading.Thread(target=lambda: got.update(runner.run_once()))
        passing.start()
        deadline = time.monotonic() + 30
        while runner._worker is None and time.monotonic() < deadline:  # the pass's process
            time.sleep(0.01)
        assert runner._worker is not None
        runner.close()  # kills the worker, as the server's stop does
        passing.join(timeout=30)
        assert got["decision"] == "stopped"
        assert audit.history(store.path) == []
        sample = runner.service.metrics.registry.get_sample_value(
            "parkloop_loop_passes_total", {"decision": "stopped"})
        assert sample == 1.0
