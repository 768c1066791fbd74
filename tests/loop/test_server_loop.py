"""The loop inside a running server: passes on a schedule, nobody asking; the challenger
swapped in while clients read, with no failed request. The full proof, with the shifted
people streaming in and giving feedback, is the slow test at the end (``-m slow``)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from parkloop.simulate.stream import stream
from tests.loop.stores import DAYS, DEVICES, LABEL_SHARE, SHIFT_START
from tests.serve.conftest import ADMIN_TOKEN, Server

pytestmark = pytest.mark.server

READ_DEVICES = ["sim-default-s0-0000", "sim-shifted-s0-0003"]


class Readers:
    """Clients asking where their car is, and the health check, until stopped: every
    status, and the model versions the answers named."""

    def __init__(self, server: Server, devices: list[str] = READ_DEVICES) -> None:
        self.server = server
        self.statuses: Counter[int | str] = Counter()
        self.versions: list[tuple[float, str | None]] = []
        """(when, model version) of every answer"""
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._read, args=(path,), daemon=True)
                         for path in [f"/v1/devices/{d}/car" for d in devices]
                         + ["/healthz"]]

    def __enter__(self) -> Readers:
        for t in self._threads:
            t.start()
        return self

    def first_seen(self, version: str) -> float:
        """Seconds since the epoch of the first answer naming ``version``."""
        return next(t for t, v in self.versions if v == version)

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _read(self, path: str) -> None:
        with httpx.Client(base_url=self.server.url, headers=self.server.admin,
                          timeout=10) as client:
            while not self._stop.is_set():
                try:
                    r = client.get(path)
                except httpx.TransportError as exc:
                    self.statuses[type(exc).__name__] += 1
                    continue
                self.statuses[r.status_code] += 1
                if path.endswith("/car") and r.status_code == 200:
                    self.versions.append((time.time(), r.json()["model_version"]))
                time.sleep(0.005)


def history(server: Server) -> list[dict[str, Any]]:
    r = httpx.get(server.url + "/v1/loop/history", params={"last": 0},
                  headers=server.admin, timeout=10)
    assert r.status_code == 200, r.text
    return list(r.json())


def wait_for(what: str, check: Any, timeout: float, server: Server) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout} s:\n{server.output()[-3000:]}")


def serving(server: Server) -> str | None:
    return httpx.get(server.url + "/readyz", timeout=10).json()["model_version"]


def settle(server: Server, timeout: float) -> dict[str, Any]:
    """Wait until the loop published by itself and the new champion serves; the publishing
    pass's record."""
    published = wait_for("published pass", lambda: next(
        (r for r in history(server) if r["decision"] == "published"), None), timeout, server)
    version = published["retrain"]["version"]
    wait_for(f"version {version} serving", lambda: serving(server) == version, 30, server)
    return published


def test_the_server_loop_publishes_by_itself_and_swaps_without_a_failed_request(
        shifted_store: Path) -> None:
    server = Server(shifted_store, loop_interval=2).wait_ready()
    try:
        assert serving(server) == "1"
        with Readers(server) as readers:
            published = settle(server, 180)
            version = published["retrain"]["version"]
            time.sleep(0.5)  # answers on the new champion for a moment
        assert published["actor"] == "server"
        assert {"drift", "accuracy"} <= set(published["fired"])
        assert set(readers.statuses) == {200}, readers.statuses
        assert sum(readers.statuses.values()) > 100
        assert readers.versions[0][1] == "1"
        assert readers.versions[-1][1] == version
        to_serving = readers.first_seen(version) - published["at_ms"] / 1000
        # a pass can also be asked for, by the admin only
        asked = httpx.post(server.url + "/v1/loop/run", headers=server.admin, timeout=10)
        assert asked.status_code in (202, 409), asked.text
        device = httpx.post(server.url + "/v1/loop/run", headers=server.token("someone"),
                            timeout=10)
        assert device.status_code == 403
        published_metric = 'parkloop_loop_passes_total{decision="published"} 1.0'

        def metrics() -> str | None:
            text = httpx.get(server.url + "/metrics", timeout=10).text
            return text if published_metric in text else None

        assert 'parkloop_loop_monitor_alarm{monitor="drift"}' in wait_for(
            "the pass in the metrics", metrics, 30, server)
        print(f"crossing -> version {version} serving: {to_serving:.1f} s")
    finally:
        server.stop()


@pytest.mark.slow
def test_shifted_people_streaming_with_feedback_into_a_running_server(
        champion_store: Path) -> None:
    """The closed loop's proof end to end: the champion of the default scenario serves, twelve
    people of the shifted scenario stream a week into the server, half of them telling it
    when its answers are wrong; the loop, on its own schedule, crosses, retrains, and the
    challenger is swapped in with no failed request."""
    server = Server(champion_store, loop_interval=20).wait_ready()
    try:
        with Readers(server, ["sim-default-s0-0000", "sim-default-s0-0001"]) as readers:
            sent = stream(server.url, ADMIN_TOKEN, devices=DEVICES, days=DAYS,
                          scenario="shifted", label_share=LABEL_SHARE, start=SHIFT_START,
                          feedback_share=0.5)
            published = settle(server, 600)
            time.sleep(0.5)
        assert sent.feedback_yes + sent.feedback_no + sent.feedback_missed > 0
        assert set(readers.statuses) == {200}, readers.statuses
        figures = published["retrain"]["gate"]["figures"]
        assert figures["unseen_challenger_pr_auc"] >= figures["unseen_champion_pr_auc"] + 0.01
        assert figures["unseen_challenger_accuracy"] >= figures["unseen_champion_accuracy"]
        assert published["retrain"]["feedback"].get("ok", 0) > 0
        version = published["retrain"]["version"]
        to_serving = readers.first_seen(version) - published["at_ms"] / 1000
        print(f"crossing -> version {version} serving: "
              f"{to_serving:.1f} s; {sent.describe()}")
    finally:
        server.stop()
