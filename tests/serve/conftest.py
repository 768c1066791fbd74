"""A real server for the API tests: ``parkloop serve`` in a subprocess on a free port, over a
store whose registry holds two rule models (version 1 published)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from parkloop.facts.rules import load_rules
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.model import ParkedModel
from parkloop.interpret.registry import Registry
from parkloop.store import Store
from tests.conftest import once, seed_registry

ADMIN_TOKEN = "test-admin-token-0123456789"
THRESHOLDS = {"1": 10.0, "2": 14.0}
"""the registered versions: the rule p85 speed >= threshold m/s"""


def rule_model(threshold: float) -> ParkedModel:
    """A real (if simple) model: the spec's rule baseline on the shipped rules version."""
    return ParkedModel(ThresholdRule(0, threshold), ("leg_p85_speed_mps",), 0.5, "rule",
                       "test@0", load_rules("v1").identity)


def register(store: Path, threshold: float, tmp: Path) -> str:
    art = tmp / f"model-{threshold}"
    rule_model(threshold).save(art)
    return Registry(store).register(art, params={"threshold": str(threshold)},
                                    metrics={"f1": 0.5}, tags={"rules_version":
                                                               load_rules("v1").identity})


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``parkloop serve`` as a subprocess; :meth:`stop` ends it as an operator would."""

    def __init__(self, store: Path, *, env: dict[str, str] | None = None,
                 loop_interval: float = 0, workers: int = 0) -> None:
        """``loop_interval``: seconds between the server's loop passes (0: only on POST
        /v1/loop/run, so that no pass competes with a test for the CPU); ``workers``: live
        pipeline worker processes. The same worker code runs in a thread with 0, which
        starts 3-5 s sooner; the tests about the process model (test_live, test_hot_swap,
        test_faults, test_pipeline) ask for two where it is what they test, whatever the
        machine's cores."""
        self.store = store
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = store.parent / f"serve-{self.port}.log"
        self._fh = self.log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkloop", "serve", "--store", str(store), "--port",
             str(self.port), "--loop-interval", str(loop_interval), "--workers", str(workers)],
            stdout=self._fh, stderr=subprocess.STDOUT,
            env={**os.environ, "PARKLOOP_ADMIN_TOKEN": ADMIN_TOKEN, **(env or {})})
        self.admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    def wait_ready(self, timeout: float = 90.0) -> Server:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready in {timeout} s:\n{self.output()}")

    def wait_caught_up(self, timeout: float = 60.0) -> None:
        """Until the live pipeline has taken in every stored batch."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = httpx.get(self.url + "/readyz", timeout=5).json()
            if r["ready"] and r["raw_watermark"] == r["raw_committed"]:
                return
            time.sleep(0.05)
        raise AssertionError(f"live pipeline did not catch up in {timeout} s")

    def token(self, device_id: str) -> dict[str, str]:
        """Register ``device_id`` through the admin API; its auth header."""
        r = httpx.post(self.url + "/v1/devices", json={"device_id": device_id},
                       headers=self.admin, timeout=10)
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['token']}"}

    def output(self) -> str:
        self._fh.flush()
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()


@pytest.fixture(scope="session")
def registry_template(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> Path:
    """A store holding no events and a registry with the rule models of :data:`THRESHOLDS`,
    version 1 published, made once per run (MLflow's import and registering take seconds);
    copy it before use."""
    return make_registry_template(tmp_path_factory, mlflow_db)


def make_registry_template(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> Path:
    """:func:`registry_template`, for the root conftest too (it makes it while another worker
    compiles the kernels: it needs none)."""

    def make(root: Path) -> None:
        store = root / "store"
        Store.create(store).close()
        seed_registry(store, mlflow_db)
        for version, threshold in THRESHOLDS.items():
            assert register(store, threshold, root) == version
        Registry(store).publish("1", reason="test champion")

    return once(tmp_path_factory, "served", make) / "store"


@pytest.fixture
def empty_store(registry_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the template: no events, models registered."""
    shutil.copytree(registry_template, tmp_path / "store")
    return tmp_path / "store"


@contextmanager
def serving_sim(sim_store_path: Path, registry_template: Path, where: Path, *,
                workers: int = 0) -> Iterator[Server]:
    """A server over a copy of the simulated store, models registered, version 1 serving."""
    store = where / "store"
    shutil.copytree(sim_store_path, store)
    shutil.copytree(registry_template / "registry", store / "registry")
    server = Server(store, workers=workers)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sim_server(sim_store_path: Path, registry_template: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with serving_sim(sim_store_path, registry_template,
                     tmp_path_factory.mktemp("sim-served")) as server:
        yield server
