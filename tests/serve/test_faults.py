"""Faults survived through HTTP with nothing lost.

kill -9: phones stream batches into ``parkloop serve`` and the whole server (its process group:
Granian's main process and worker, the pipeline workers) is killed at a random moment, several
rounds; one round's server runs the pipeline in worker processes (so that a kill takes them and
the forkserver too, and that server starts after a kill), the others in a thread (the store is
what they are about, and they start seconds sooner). After each restart, every batch the server
acknowledged is stored exactly once and whole, and the answers equal a batch build of what is
stored. And kill -9 of one pipeline
worker under load: no request fails, and the worker is back with the same answers. The
disk-full test lives in test_disk_full.py.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from parkloop.store import Store
from tests.serve.conftest import ADMIN_TOKEN, free_port
from tests.serve.test_live_engine import batch_view

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
DEVICES = [f"fault-{i:04d}" for i in range(3)]
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
ROUNDS = 3
"""kills per run; each costs a server start (3-8 s here, most of this test's time)"""
PROCESS_ROUND = 1
"""the round whose server runs two pipeline worker processes (the others: none)"""


def batch(device: int, k: int) -> list[dict[str, Any]]:
    """The k-th batch of a phone: a 4-minute drive at 15 m/s (fixes 4 s apart), then, in the
    next batch, 30 minutes parked (fixes 30 s apart), and so on."""
    start = T0 + k * 35 * 60_000
    lat0 = 48.10 + 0.05 * device + 0.03 * (k // 2)
    if k % 2 == 0:  # driving north
        return [{"kind": "fix", "t": start + i * 4000, "lat": lat0 + i * 60 / 111_195,
                 "lon": 11.5, "accuracy_m": 5.0} for i in range(60)]
    lat = lat0 + 60 * 60 / 111_195
    return [{"kind": "fix", "t": start + i * 30_000, "lat": lat, "lon": 11.5,
             "accuracy_m": 5.0} for i in range(60)]


class Phones:
    """One thread per device posting its batches in order until told to stop or the server
    goes away; an unacknowledged batch is retried first in the next round (phones retry)."""

    def __init__(self) -> None:
        self.next = dict.fromkeys(range(len(DEVICES)), 0)
        self.acked: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self, url: str) -> None:
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(url, d), daemon=True)
                         for d in self.next]
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=30)

    def _run(self, url: str, d: int) -> None:
        with httpx.Client(base_url=url, headers=ADMIN, timeout=10) as client:
            while not self._stop.is_set():
                k = self.next[d]
                body = {"batch_id": f"b{k:05d}", "events": batch(d, k)}
                try:
                    r = client.post(f"/v1/devices/{DEVICES[d]}/events", json=body)
                except httpx.TransportError:
                    return  # the server is gone: this batch's fate is unknown, retry it
                assert r.status_code == 200, r.text
                self.acked[(DEVICES[d], body["batch_id"])] = r.json()["n_stored"]
                self.next[d] = k + 1


class KillableServer:
    """``parkloop serve`` in a process group of its own, so kill -9 reaches every process."""

    def __init__(self, store: Path, log_dir: Path | None = None, workers: int = 2) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = ((log_dir or store.parent) / "serve.log").open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkloop", "serve", "--store", str(store), "--port",
             self.url.rsplit(":", 1)[1], "--loop-interval", "0", "--workers", str(workers)],
            stdout=self.log,
            stderr=subprocess.STDOUT, start_new_session=True,
            env={**os.environ, "PARKLOOP_ADMIN_TOKEN": ADMIN_TOKEN})

    def caught_up(self, timeout: float = 90.0) -> int:
        """Wait until ready with every stored batch taken in; the newest batch number."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, "the server exited"
            try:
                r = httpx.get(self.url + "/readyz", timeout=2).json()
                if r["ready"] and r["raw_watermark"] == r["raw_committed"]:
                    return int(r["raw_committed"])
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not caught up in {timeout} s")

    def answers(self) -> dict[str, Any]:
        return {d: httpx.get(f"{self.url}/v1/devices/{d}/car", headers=ADMIN,
                             timeout=10).json() for d in DEVICES}

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.log.close()

    def stop(self) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        self.proc.wait(timeout=60)
        self.log.close()


def test_kill_9_under_load_loses_no_acknowledged_batch(empty_store: Path) -> None:
    rng = random.Random(20261205)
    phones = Phones()
    seen: list[tuple[int, dict[str, Any]]] = []  # (newest batch, answers) after each restart
    for i in range(ROUNDS):
        server = KillableServer(empty_store, workers=2 if i == PROCESS_ROUND else 0)
        seen.append((server.caught_up(), server.answers()))
        phones.start(server.url)
        time.sleep(rng.uniform(0.3, 1.5))  # the kill lands anywhere in the stream
        server.kill9()
        phones.stop()
    server = KillableServer(empty_store, workers=0)
    seen.append((server.caught_up(), server.answers()))
    server.stop()

    with Store.open(empty_store, read_only=True) as store:
        stored = store.con.execute(
            "SELECT device_id, batch_id, count(*), min(n_stored), min(n_events), "
            "min(n_quarantined) FROM raw_batch GROUP BY ALL").fetchall()
        fixes = {(d, b): n for d, b, n in store.con.execute(
            "SELECT b.device_id, b.batch_id, count(*) FROM raw_fix f JOIN raw_batch b "
            "ON f.batch_no = b.batch_no GROUP BY ALL").fetchall()}
        first = dict(store.con.execute(
            "SELECT device_id, min(batch_no) FROM raw_batch GROUP BY ALL").fetchall())
        assert len(phones.acked) >= 6, "too little was acknowledged to prove anything"
        by_id = {(d, b): (n, s) for d, b, n, s, _, _ in stored}
        for key, n_stored in phones.acked.items():
            assert by_id.get(key) == (1, n_stored), f"acknowledged batch {key} lost or torn"
        for d, b, n, s, e, q in stored:  # every batch there is whole, acknowledged or not
            assert n == 1, (d, b)
            assert s + q == e, (d, b)
            assert fixes.get((d, b), 0) == s, (d, b)
        for upto, answers in seen[1:]:
            for device in (d for d in DEVICES if first.get(d, upto + 1) <= upto):
                _, want = batch_view(store, device, upto)
                got = answers[device]
                assert (got["status"], got["lat"], got["lon"], got["p_parked"]) == (
                    want.status, want.lat, want.lon, want.p_parked), (device, upto)


def test_kill_9_of_a_pipeline_worker_fails_no_request(empty_store: Path) -> None:
    from parkloop.serve.shards import worker_of

    phones = Phones()
    server = KillableServer(empty_store)
    server.caught_up()
    phones.start(server.url)
    deadline = time.monotonic() + 60
    while not all(httpx.get(f"{server.url}/v1/devices/{d}/car", headers=ADMIN).status_code
                  == 200 for d in DEVICES):  # every device known before the reads count
        assert time.monotonic() < deadline, "devices not known"
        time.sleep(0.05)
    failed: list[str] = []
    reading = threading.Event()

    def read() -> None:
        with httpx.Client(base_url=server.url, headers=ADMIN, timeout=10) as client:
            while not reading.is_set():
                for d in DEVICES:
                    r = client.get(f"/v1/devices/{d}/car")
                    if r.status_code != 200:
                        failed.append(f"{d}: {r.status_code} {r.text}")

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        time.sleep(1.0)
        before = httpx.get(server.url + "/readyz").json()["workers"]
        assert [w["state"] for w in before] == ["serving", "serving"]
        victim = before[worker_of(DEVICES[0], 2)]
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 60
        while True:
            now = httpx.get(server.url + "/readyz").json()["workers"][victim["worker"]]
            if now["restarts"] == 1 and now["state"] == "serving":
                break
            assert time.monotonic() < deadline, f"worker not back: {now}"
            time.sleep(0.05)
        assert now["pid"] != victim["pid"]
        time.sleep(0.5)  # it answers again while the phones go on
    finally:
        phones.stop()
        reading.set()
        reader.join(timeout=30)
    upto = server.caught_up()
    answers = server.answers()
    server.stop()
    assert not failed, failed[:5]
    assert len(phones.acked) >= 6, "too little was acknowledged to prove anything"
    with Store.open(empty_store, read_only=True) as store:
        for device in DEVICES:
            _, want = batch_view(store, device, upto)
            got = answers[device]
            assert (got["status"], got["lat"], got["lon"], got["p_parked"]) == (
                want.status, want.lat, want.lon, want.p_parked), device
