"""Benchmark: `parkloop serve` under load from wrk: reading the car answer, ingesting fixes
durably with the live pipeline on, and how soon a parking shows in the answer.

Everything runs on this machine: a server (``parkloop serve``, one process) over a store
built in a temporary directory (``parkloop simulate`` devices plus the rule model of
``tests/serve/conftest.py``, p85 speed >= 10 m/s is parked, registered and published), and
`wrk <https://github.com/wg/wrk>`_ as the load generator (``apt-get install wrk``).

1. reads: ``GET /healthz`` (no auth, constant body) and ``GET /v1/devices/{id}/car`` (a
   device token, a parked device's answer) taking turns, ``--rounds`` rounds of
   ``--seconds`` each per connection count (``wrk -t1``); requests/s, p50, p99 per run, and
   car / healthz per round (median of rounds). Whether wrk is the bottleneck: its own CPU
   (from ``wait4``'s rusage, in cores) is listed for every run, and the car at the largest
   connection count is run again with ``wrk -t2``;
2. ingestion: ``bench/serve_ingest.lua`` POSTs batches of 100 fixes round-robin over
   ``--devices`` devices (each registered through ``POST /v1/devices``, sending with its own
   token; 1 fix/s of phone time, parked / walking / driving), ``--ingest-connections``
   connections, as fast as the server answers. A POST is answered only after its batch is
   committed (group commit), and only replies with ``"status":"stored"`` count. The server's
   ``/metrics`` (commit group sizes and times, pipeline cycles) are read before and after;
   ``/readyz`` is polled meanwhile for the live pipeline's lag (``raw_committed -
   raw_watermark``, batches) and afterwards until it has caught up. "phone h per device" is
   how much of each device's history the run made: the live pipeline reruns a device's open
   tail on every push, so its cost grows with that;
3. parking latency: ``--trials`` devices each send 12 minutes of driving at about 14 m/s and
   then standing fixes up to 550 s after the car stopped; their leg end is judged once the
   device's data passes its decision time (leg end + ``features.wait_s``, 600 s), which the
   last POST (fixes 550-650 s after the stop) does. Latency: from sending that POST to the
   first ``GET .../car`` (polled every 2 ms) whose ``parked_at`` is the new parking (10 s at
   most: a trial that times out counts with its 10 s, and percentiles reaching it are lower
   bounds, marked ">="). Run once on an otherwise idle server and once beside a background
   ingestion (serve_ingest.lua paced at ``--background-fixes`` fixes/s on
   ``--background-connections`` connections, the ingestion's devices), each for up to
   ``--trials`` trials or ``--trials-budget-s`` seconds.

CPU: the server's (its process tree, from ``/proc``) and wrk's, in cores, for every wrk run,
plus the server's busiest threads during ingestion (the worker's main thread runs the event
loop). "other" is what the rest of the machine used meanwhile (busy time from ``/proc/stat``
less server, wrk and this script): a run another job disturbed shows there.

Targets: car >= 5,000 requests/s, its p99 <= 10 ms, car / healthz >= 0.80; ingestion >= 50,000
fixes/s in batches of 100, durable, live pipeline on; parking p99 <= 1 s.

    python bench/serve.py                      # about 4 minutes
    python bench/serve.py --quick --json       # about a minute
    python bench/serve.py --parts ingest --ingest-connections 32 64 128 --keep
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from procs import TICK, busy_cpu_s, tree

BENCH = Path(__file__).resolve().parent
REPORT_LUA = BENCH / "serve_report.lua"
INGEST_LUA = BENCH / "serve_ingest.lua"
DAY_MS = 86_400_000
BATCH = 100
"""fixes per POSTed batch"""
RULE_THRESHOLD_MPS = 10.0
"""the published rule model: a leg end whose leg's p85 speed is at least this is parked"""
WAIT_S = 600
"""the rules' ``features.wait_s`` (v1): a leg end is decided this long after it, s"""
TARGETS = {"car_rps": 5000.0, "car_p99_ms": 10.0, "car_over_healthz": 0.80,
           "ingest_fixes_per_s": 50_000.0, "parking_p99_s": 1.0, "catch_up_s": 2.0,
           "worker_back_s": 5.0}


# --- processes and CPU --------------------------------------------------------------------

def tree_cpu(root: int) -> dict[int, float]:
    """``root`` and its descendants: pid -> CPU seconds used."""
    return {pid: cpu for pid, (_, cpu) in tree(root).items()}


def thread_cpu(pids: list[int]) -> dict[tuple[int, int, str], float]:
    """Every thread of ``pids``: (pid, tid, name) -> CPU seconds used."""
    out = {}
    for pid in pids:
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/stat", "rb") as f:
                    head, rest = f.read().rsplit(b")", 1)
            except OSError:
                continue
            fields = rest.split()
            name = head.split(b"(", 1)[1].decode(errors="replace")
            out[(pid, int(tid), name)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """``parkloop serve`` in a subprocess, its output in ``log``."""

    def __init__(self, store: Path, log: Path, admin_token: str, workers: int | None = None
                 ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self.admin = {"Authorization": f"Bearer {admin_token}"}
        self._fh = log.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkloop", "serve", "--store", str(store), "--port",
             str(self.port), *([] if workers is None else ["--workers", str(workers)])],
            stdout=self._fh, stderr=subprocess.STDOUT,
            env={**os.environ, "PARKLOOP_ADMIN_TOKEN": admin_token})
        self.client = httpx.Client(base_url=self.url, timeout=30.0)
        self.tokens: dict[str, str] = {}

    def wait_ready(self, timeout: float = 120.0) -> float:
        """Seconds until ``/readyz`` answers 200."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            self.check_alive()
            try:
                if self.client.get("/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - start
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit(f"server not ready in {timeout:.0f} s:\n{self.tail()}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the server exited with {self.proc.returncode}:\n{self.tail()}")

    def cpu_s(self) -> float:
        return sum(tree_cpu(self.proc.pid).values())

    def pids(self) -> list[int]:
        return list(tree_cpu(self.proc.pid))

    def register(self, device_id: str) -> str:
        """Register ``device_id`` through the admin API (once a run); its token."""
        if device_id not in self.tokens:
            r = self.client.post("/v1/devices", json={"device_id": device_id},
                                 headers=self.admin)
            if r.status_code != 201:
                raise SystemExit(f"registering {device_id}: {r.status_code} {r.text}")
            self.tokens[device_id] = str(r.json()["token"])
        return self.tokens[device_id]

    def metrics(self) -> dict[str, float]:
        """``/metrics`` as series -> value (series with their labels, as printed)."""
        out = {}
        for line in self.client.get("/metrics").text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = float(value)
        return out

    def tail(self, chars: int = 4000) -> str:
        if not self._fh.closed:
            self._fh.flush()
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> int | None:
        """Stop as an operator would (SIGINT); the exit code."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._fh.close()
        return self.proc.returncode


# --- wrk ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class WrkRun:
    """One wrk run: its figures, and the CPU it, the server and the rest used (cores)."""

    label: str
    connections: int
    threads: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int
    status_codes: dict[str, int]
    stored: int
    wrk_cores: float
    server_cores: float
    other_cores: float


def need_wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk not found: this benchmark uses it as the load generator. Install "
                         "it with `apt-get install wrk` (Debian/Ubuntu; `brew install wrk` on "
                         "macOS), then run again.")
    return found


class Wrk:
    """A wrk process, started now; :meth:`finish` waits for it (or interrupts it: wrk then
    stops and reports what it did)."""

    def __init__(self, label: str, server: Server, path: str, *, connections: int,
                 threads: int = 1, seconds: float, script: Path = REPORT_LUA,
                 headers: dict[str, str] | None = None, script_args: list[str] | None = None,
                 timeout_s: int = 30) -> None:
        self.label, self.server, self.connections, self.threads = (
            label, server, connections, threads)
        cmd = [need_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s",
               f"--timeout={timeout_s}s", "--latency", "-s", str(script)]
        for k, v in (headers or {}).items():
            cmd += ["-H", f"{k}: {v}"]
        cmd.append(server.url + path)
        if script_args:
            cmd += ["--", *script_args]
        self._out = tempfile.TemporaryFile()  # noqa: SIM115 (closed by finish)
        self._busy, self._own = busy_cpu_s(), time.process_time()
        self._server = server.cpu_s()
        self._start = time.perf_counter()
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT)

    def finish(self, interrupt: bool = False) -> WrkRun:
        if interrupt:
            self.proc.send_signal(signal.SIGINT)
        _, status, usage = os.wait4(self.proc.pid, 0)
        wall = time.perf_counter() - self._start
        server = self.server.cpu_s() - self._server
        wrk = usage.ru_utime + usage.ru_stime
        other = busy_cpu_s() - self._busy - server - wrk - (time.process_time() - self._own)
        self._out.seek(0)
        text = self._out.read().decode(errors="replace")
        self._out.close()
        line = next((x for x in text.splitlines() if x.startswith("WRK_JSON ")), None)
        if os.waitstatus_to_exitcode(status) or line is None:
            raise SystemExit(f"wrk failed ({os.waitstatus_to_exitcode(status)}):\n{text}")
        r = json.loads(line.split(" ", 1)[1])
        seconds = r["duration_us"] / 1e6
        return WrkRun(
            self.label, self.connections, self.threads, round(seconds, 2), r["requests"],
            round(r["requests"] / seconds, 1), r["p50_us"] / 1000, r["p99_us"] / 1000,
            r["max_us"] / 1000, r["status_errors"],
            r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"],
            r["status_codes"], r["stored"], round(wrk / wall, 2), round(server / wall, 2),
            round(max(0.0, other) / wall, 2))


# --- the store ----------------------------------------------------------------------------

def build_store(path: Path, devices: int, days: int, seed: int) -> list[str]:
    """A simulated store with the rule model registered and published; its device ids."""
    from parkloop.facts.rules import load_rules
    from parkloop.interpret.baseline import ThresholdRule
    from parkloop.interpret.model import ParkedModel
    from parkloop.interpret.registry import Registry
    from parkloop.simulate import simulate
    from parkloop.store import Store

    with Store.create(path) as s:
        simulate(s, devices=devices, days=days, seed=seed, label_share=0.5)
        ids = [str(r[0]) for r in s.con.execute(
            "SELECT DISTINCT device_id FROM raw_batch ORDER BY 1").fetchall()]
    rules = load_rules("v1").identity
    model = ParkedModel(ThresholdRule(0, RULE_THRESHOLD_MPS), ("leg_p85_speed_mps",), 0.5,
                        "rule", "bench@0", rules)
    model.save(path.parent / "rule-model")
    registry = Registry(path)
    version = registry.register(path.parent / "rule-model",
                                params={"threshold": str(RULE_THRESHOLD_MPS)},
                                metrics={"f1": 0.5}, tags={"rules_version": rules})
    registry.publish(version, reason="bench/serve.py")
    return ids


# --- 1. reads -----------------------------------------------------------------------------

def reads(server: Server, sim_devices: list[str], connections: list[int], rounds: int,
          seconds: float) -> dict[str, Any]:
    """/healthz and the car answer taking turns; the car again with wrk -t2."""
    answers = {d: server.client.get(f"/v1/devices/{d}/car", headers=server.admin).json()
               for d in sim_devices}
    device = next((d for d, a in answers.items() if a["status"] == "parked"), sim_devices[0])
    auth = {"Authorization": f"Bearer {server.register(device)}"}
    car_path = f"/v1/devices/{device}/car"
    r = server.client.get(car_path, headers=auth)
    if r.status_code != 200:
        raise SystemExit(f"GET {car_path}: {r.status_code} {r.text}")
    print(f"reads: car of {device}: {r.text}", file=sys.stderr)
    for path, headers in (("/healthz", None), (car_path, auth)):  # warm-up
        Wrk("warm-up", server, path, connections=16, seconds=1, headers=headers).finish()
    runs: list[WrkRun] = []
    ratios: dict[int, list[float]] = {}
    for c in connections:
        for i in range(rounds):
            health = Wrk("healthz", server, "/healthz", connections=c, seconds=seconds).finish()
            car = Wrk("car", server, car_path, connections=c, seconds=seconds,
                      headers=auth).finish()
            runs += [health, car]
            ratios.setdefault(c, []).append(car.rps / health.rps)
            print(f"reads c={c} round {i + 1}: healthz {health.rps:,.0f}/s, car "
                  f"{car.rps:,.0f}/s (p99 {car.p99_ms:.1f} ms), wrk {car.wrk_cores} cores, "
                  f"server {car.server_cores}", file=sys.stderr)
            server.check_alive()
    top = max(connections)
    two = Wrk("car", server, car_path, connections=top, threads=2, seconds=seconds,
              headers=auth).finish()
    runs.append(two)
    summary = []
    for c in connections:
        mine = [r for r in runs if r.connections == c and r.threads == 1]
        h = [r for r in mine if r.label == "healthz"]
        k = [r for r in mine if r.label == "car"]
        summary.append({
            "connections": c,
            "healthz_rps": statistics.median(r.rps for r in h),
            "healthz_p50_ms": statistics.median(r.p50_ms for r in h),
            "healthz_p99_ms": statistics.median(r.p99_ms for r in h),
            "car_rps": statistics.median(r.rps for r in k),
            "car_p50_ms": statistics.median(r.p50_ms for r in k),
            "car_p99_ms": statistics.median(r.p99_ms for r in k),
            "car_over_healthz": round(statistics.median(ratios[c]), 3),
            "non_2xx": sum(r.non_2xx + r.socket_errors for r in mine),
            "wrk_cores_max": max(r.wrk_cores for r in mine),
            "server_cores": round(statistics.median(r.server_cores for r in mine), 2),
            "other_cores_max": max(r.other_cores for r in mine)})
    car_t1 = next(s for s in summary if s["connections"] == top)["car_rps"]
    return {"device": device, "rounds": rounds, "seconds": seconds, "summary": summary,
            "car_t2": asdict(two), "t2_over_t1": round(two.rps / car_t1, 3),
            "runs": [asdict(r) for r in runs]}


# --- 2. ingestion -------------------------------------------------------------------------

def load_devices(server: Server, n: int, path: Path, seed: int) -> None:
    """Register ``n`` devices; write the device file serve_ingest.lua reads."""
    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(n):
            device = f"load-{i:04d}"
            f.write(f"{device} {server.register(device)} {48.137 + rng.uniform(-.08, .08):.6f}"
                    f" {11.575 + rng.uniform(-.12, .12):.6f}\n")


def histogram(before: dict[str, float], after: dict[str, float], name: str
              ) -> dict[str, float | None]:
    """A Prometheus histogram's change between two scrapes: count, mean, and p50/p99 as the
    upper bound of the bucket they fall in."""
    count = after.get(f"{name}_count", 0.0) - before.get(f"{name}_count", 0.0)
    total = after.get(f"{name}_sum", 0.0) - before.get(f"{name}_sum", 0.0)
    buckets = sorted((float(k.split('le="')[1].rstrip('"}')), v - before.get(k, 0.0))
                     for k, v in after.items() if k.startswith(f"{name}_bucket{{"))

    def q(p: float) -> float | None:
        return next((le for le, n in buckets if n >= p * count), None) if count else None

    return {"count": count, "mean": round(total / count, 4) if count else None,
            "p50_le": q(0.5), "p99_le": q(0.99), "max_le": q(1.0)}


class LagWatch:
    """Polls ``/readyz`` in a thread: the live pipeline's lag in batches over time."""

    def __init__(self, server: Server, every_s: float = 0.5) -> None:
        self.samples: list[tuple[float, int]] = []
        self._url, self._every, self._stop = server.url, every_s, threading.Event()
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=10) as c:
            while not self._stop.wait(self._every):
                try:
                    lag = lag_now(c)
                except (httpx.HTTPError, ValueError):
                    continue
                self.samples.append((round(time.perf_counter() - self._start, 2), lag))

    def stop(self) -> list[tuple[float, int]]:
        self._stop.set()
        self._thread.join()
        return self.samples


def lag_now(client: httpx.Client) -> int:
    """Raw batches stored but not yet taken in by the live pipeline: from ``/readyz``
    (``raw_committed - raw_watermark``), or the lag gauge of ``/metrics`` (updated once a
    pipeline cycle) for a server whose ``/readyz`` does not say."""
    ready = client.get("/readyz").json()
    if ready.get("raw_committed") is not None:
        return int(ready["raw_committed"]) - int(ready.get("raw_watermark") or 0)
    for line in client.get("/metrics").text.splitlines():
        if line.startswith("parkloop_pipeline_lag_batches "):
            return int(float(line.split()[1]))
    raise SystemExit("the server reports no pipeline lag (/readyz, /metrics)")


def catch_up(server: Server, timeout: float = 300.0) -> tuple[int, float | None]:
    """The live pipeline's lag now (batches) and the seconds until it is 0 (None: not within
    ``timeout``)."""
    start = time.perf_counter()
    lag0 = lag = lag_now(server.client)
    while lag > 0 and time.perf_counter() - start < timeout:
        time.sleep(0.05)
        server.check_alive()
        lag = lag_now(server.client)
    return lag0, round(time.perf_counter() - start, 2) if lag == 0 else None


def ingest(server: Server, devices_file: Path, devices: int, connections: int,
           seconds: float, t0_ms: int, tag: str) -> dict[str, Any]:
    """serve_ingest.lua flat out; the server's commit and pipeline figures around it."""
    before = server.metrics()
    pids = server.pids()
    threads0 = thread_cpu(pids)
    watch = LagWatch(server)
    run = Wrk("ingest", server, "", connections=connections, seconds=seconds,
              script=INGEST_LUA, script_args=[str(devices_file), tag, str(t0_ms), "0", "1",
                                              str(BATCH)]).finish()
    lag_samples = watch.stop()
    threads1 = thread_cpu(pids)
    lag_end, catch_up_s = catch_up(server)
    after = server.metrics()
    busiest = sorted(((threads1[k] - threads0.get(k, 0.0)) / run.seconds, k[0] == k[1], k[2])
                     for k in threads1)[::-1][:4]
    out = {
        "connections": connections, "seconds": run.seconds, "batches_stored": run.stored,
        "fixes_per_s": round(run.stored * BATCH / run.seconds),
        "batches_per_s": round(run.stored / run.seconds, 1),
        "phone_h_per_device": round(run.stored * BATCH / devices / 3600, 2),
        "p50_ms": run.p50_ms, "p99_ms": run.p99_ms, "max_ms": run.max_ms,
        "non_2xx": run.non_2xx, "socket_errors": run.socket_errors,
        "status_codes": run.status_codes,
        "wrk_cores": run.wrk_cores, "server_cores": run.server_cores,
        "other_cores": run.other_cores,
        "busiest_threads": [{"cores": round(c, 2), "event_loop": main, "name": name}
                            for c, main, name in busiest],
        "commit_batches": histogram(before, after, "parkloop_commit_batches"),
        "commit_seconds": histogram(before, after, "parkloop_commit_seconds"),
        "pipeline_cycle_seconds": histogram(before, after, "parkloop_pipeline_cycle_seconds"),
        "lag_max_batches": max((lag for _, lag in lag_samples), default=0),
        "lag_end_batches": lag_end, "catch_up_s": catch_up_s,
        "lag_samples": lag_samples,
        "metrics_lag_gauge_at_end": after.get("parkloop_pipeline_lag_batches")}
    print(f"ingest c={connections}: {out['fixes_per_s']:,} fixes/s, p99 {run.p99_ms:.0f} ms, "
          f"lag at end {lag_end} batches, caught up in {catch_up_s} s", file=sys.stderr)
    return out


# --- 4. reads and a worker's death under ingestion ------------------------------------------

def loaded(server: Server, device: str, devices_file: Path, conns: int, fixes: int,
           read_connections: int, seconds: float, t0_ms: int) -> dict[str, Any]:
    """Beside a paced background ingestion: /healthz and the car answer as in the reads,
    then the car of a device whose pipeline worker gets kill -9 a second into the run:
    failed requests, and seconds until ``/readyz`` shows the worker serving again."""
    from parkloop.serve.shards import worker_of

    auth = {"Authorization": f"Bearer {server.register(device)}"}
    car_path = f"/v1/devices/{device}/car"
    bg = Wrk("background", server, "", connections=conns, seconds=3600, script=INGEST_LUA,
             script_args=[str(devices_file), "loaded-bg", str(t0_ms), str(fixes / BATCH), "1",
                          str(BATCH)])
    time.sleep(2.0)
    health = Wrk("healthz", server, "/healthz", connections=read_connections,
                 seconds=seconds).finish()
    car = Wrk("car", server, car_path, connections=read_connections, seconds=seconds,
              headers=auth).finish()
    workers = server.client.get("/readyz").json().get("workers", [])
    kill: dict[str, Any] | None = None
    if len(workers) > 1 and workers[0]["pid"] is not None:
        victim = workers[worker_of(device, len(workers))]
        during = Wrk("car during kill", server, car_path, connections=read_connections,
                     seconds=seconds + 6, headers=auth)
        time.sleep(1.0)
        os.kill(victim["pid"], signal.SIGKILL)
        killed = time.perf_counter()
        back_s = None
        while time.perf_counter() - killed < 60:
            w = server.client.get("/readyz").json()["workers"][victim["worker"]]
            if w["restarts"] > victim["restarts"] and w["state"] == "serving":
                back_s = round(time.perf_counter() - killed, 2)
                break
            time.sleep(0.02)
        run = during.finish()
        kill = {"worker": victim["worker"], "serving_again_s": back_s,
                "car_requests": run.requests, "car_failed": run.non_2xx + run.socket_errors,
                "car_p99_ms": run.p99_ms, "car_max_ms": run.max_ms}
        print(f"kill -9 of worker {victim['worker']}: serving again after {back_s} s, "
              f"{kill['car_failed']} of {run.requests} car requests failed", file=sys.stderr)
    bg_run = bg.finish(interrupt=True)
    lag_end, catch_up_s = catch_up(server)
    out: dict[str, Any] = {"healthz": asdict(health), "car": asdict(car),
        "car_over_healthz": round(car.rps / health.rps, 3), "kill": kill,
        "background": {"fixes_per_s_asked": fixes,
                       "fixes_per_s": round(bg_run.stored * BATCH / bg_run.seconds),
                       "non_2xx": bg_run.non_2xx, "p99_ms": bg_run.p99_ms},
        "lag_end_batches": lag_end, "catch_up_s": catch_up_s}
    print(f"under {out['background']['fixes_per_s']:,} fixes/s: healthz {health.rps:,.0f}/s, "
          f"car {car.rps:,.0f}/s (p99 {car.p99_ms:.1f} ms)", file=sys.stderr)
    return out


# --- 3. parking latency -------------------------------------------------------------------

@dataclass
class Trip:
    """A trial device's fixes: a drive ending at ``stop_ms``, then standing; ``before`` are
    sent first, ``final`` passes the leg end's decision time."""

    device: str
    token: str
    stop_ms: int
    before: list[list[dict[str, Any]]] = field(default_factory=list)
    final: list[dict[str, Any]] = field(default_factory=list)


def make_trip(device: str, token: str, t0_ms: int, rng: random.Random) -> Trip:
    """Stand 120 s, walk 60 s, drive 12 min at about 14 m/s, slow to a stop, walk 120 s,
    stand; 1 fix/s with 4 m of GPS noise."""
    lat, lon = 48.137 + rng.uniform(-.05, .05), 11.575 + rng.uniform(-.08, .08)
    heading = rng.uniform(0, 6.283)
    speeds = ([0.0] * 120 + [1.3] * 60 + [min(14.0, 1.4 * i) for i in range(1, 11)]
              + [14.0 + rng.gauss(0, 0.8) for _ in range(720)]
              + [14.0 - 1.4 * i for i in range(1, 10)])
    stop_at = len(speeds)  # the first fix standing
    speeds += [0.0] * 5 + [1.3] * 120
    speeds += [0.0] * (stop_at + WAIT_S + 50 - len(speeds))
    fixes = []
    for i, v in enumerate(speeds):
        if 180 <= i < stop_at:
            heading += rng.gauss(0, 0.02)
        lat += v * math.cos(heading) / 111_320
        lon += v * math.sin(heading) / (111_320 * math.cos(math.radians(lat)))
        fixes.append({"kind": "fix", "t": t0_ms + i * 1000,
                      "lat": round(lat + rng.gauss(0, 4) / 111_320, 7),
                      "lon": round(lon + rng.gauss(0, 4) / 75_000, 7),
                      "accuracy_m": round(rng.uniform(4, 12), 1)})
    stop_ms = t0_ms + stop_at * 1000
    split = stop_at + WAIT_S - 50  # the last POST: fixes 550-650 s after the stop
    trip = Trip(device, token, stop_ms, final=fixes[split:])
    trip.before = [fixes[i:min(i + BATCH, split)] for i in range(0, split, BATCH)]
    return trip


def _iso_ms(text: str | None) -> int | None:
    if text is None:
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def post(client: httpx.Client, trip: Trip, batch_id: str, events: list[dict[str, Any]]
         ) -> None:
    r = client.post(f"/v1/devices/{trip.device}/events",
                    json={"batch_id": batch_id, "events": events},
                    headers={"Authorization": f"Bearer {trip.token}"})
    if r.status_code != 200 or r.json()["status"] != "stored":
        raise SystemExit(f"POST {trip.device} {batch_id}: {r.status_code} {r.text}")


def trial(client: httpx.Client, trip: Trip, tag: str, timeout: float = 10.0
          ) -> dict[str, Any]:
    """The last POST of a trip, then the car answer polled until the parking shows."""
    auth = {"Authorization": f"Bearer {trip.token}"}
    path = f"/v1/devices/{trip.device}/car"
    was = client.get(path, headers=auth).json()
    start = time.perf_counter()
    post(client, trip, f"{tag}-{trip.device}-final", trip.final)
    acked = time.perf_counter() - start
    polls = 0
    while True:
        answer = client.get(path, headers=auth).json()
        polls += 1
        seen = time.perf_counter() - start
        if answer["parked_at"] != was["parked_at"] or seen > timeout:
            break
        time.sleep(0.002)
    parked_ms = _iso_ms(answer["parked_at"])
    return {"device": trip.device, "latency_s": round(seen, 4), "ack_s": round(acked, 4),
            "polls": polls, "timed_out": seen > timeout, "status_before": was["status"],
            "decided_early": was["status"] == "parked" and was["parked_at"] is not None,
            "status": answer["status"],
            "parked_at_minus_stop_s": None if parked_ms is None else
            round((parked_ms - trip.stop_ms) / 1000, 1)}


def parking(server: Server, trials: int, budget_s: float, tag: str, t0_ms: int, seed: int,
            background: tuple[Path, int, int, int] | None) -> dict[str, Any]:
    """Up to ``trials`` parking trials (no new one after ``budget_s``), with a background
    ingestion (devices file, connections, fixes/s, its t0) or without."""
    rng = random.Random(seed)
    trips = []
    for i in range(trials):
        device = f"{tag}-{i:03d}"
        trips.append(make_trip(device, server.register(device), t0_ms + i * 3_600_000, rng))
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for trip in trips:
            for n, events in enumerate(trip.before):
                post(client, trip, f"{tag}-{trip.device}-{n}", events)
        catch_up(server)
        bg = None
        if background is not None:
            devices_file, conns, fixes, bg_t0 = background
            bg = Wrk("background", server, "", connections=conns, seconds=3600,
                     script=INGEST_LUA, script_args=[str(devices_file), f"{tag}-bg",
                                                     str(bg_t0), str(fixes / BATCH), "1",
                                                     str(BATCH)])
            time.sleep(2.0)
        before = server.metrics()
        results = []
        start = time.perf_counter()
        for trip in trips:
            if time.perf_counter() - start > budget_s:
                break
            time.sleep(rng.uniform(0.05, 0.4))  # not in step with the pipeline's cycle
            results.append(trial(client, trip, tag))
            server.check_alive()
        lag_end = lag_now(server.client)
        bg_run = bg.finish(interrupt=True) if bg is not None else None
        cycles = histogram(before, server.metrics(), "parkloop_pipeline_cycle_seconds")
    ok = [r for r in results if not r["timed_out"] and r["status"] == "parked"
          and not r["decided_early"]]
    # a trial that timed out counts with its timeout, so percentiles reaching it are bounds
    lat = sorted(r["latency_s"] for r in results if r["timed_out"] or r in ok)
    bound = min((r["latency_s"] for r in results if r["timed_out"]), default=math.inf)
    out = {
        "trials": len(results), "answered": len(ok), "lag_end_batches": lag_end,
        "timed_out": sum(r["timed_out"] for r in results),
        "decided_early": sum(r["decided_early"] for r in results),
        "not_parked": sum(r["status"] != "parked" for r in results),
        "p50_s": _pct(lat, 50), "p99_s": _pct(lat, 99), "max_s": lat[-1] if lat else None,
        "p50_at_least": (_pct(lat, 50) or 0) >= bound,
        "p99_at_least": (_pct(lat, 99) or 0) >= bound,
        "post_ack_p50_s": _pct(sorted(r["ack_s"] for r in results), 50),
        "pipeline_cycle_seconds": cycles,
        "background": None if bg_run is None else {
            "connections": bg_run.connections, "fixes_per_s_asked": background[2]
            if background else 0, "fixes_per_s": round(bg_run.stored * BATCH / bg_run.seconds),
            "p99_ms": bg_run.p99_ms, "non_2xx": bg_run.non_2xx,
            "server_cores": bg_run.server_cores, "wrk_cores": bg_run.wrk_cores},
        "results": results}
    print(f"parking {'with' if bg_run else 'without'} background: p50 {out['p50_s']} s, "
          f"p99 {out['p99_s']} s, {len(ok)} of {len(results)} trials answered in time",
          file=sys.stderr)
    return out


def _pct(sorted_values: list[float], p: float) -> float | None:
    """The p-th percentile (nearest rank)."""
    if not sorted_values:
        return None
    rank = max(0, min(len(sorted_values) - 1, int(-(-p * len(sorted_values) // 100)) - 1))
    return sorted_values[rank]


# --- report -------------------------------------------------------------------------------

def table(head: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def le(value: float | None) -> str:
    """A histogram quantile's bucket bound, for the table."""
    return "n/a" if value is None else "> the top bucket" if value == math.inf else f"<= {value:g}"


def verdict(value: float | None, target: float, higher: bool) -> str:
    if value is None:
        return "n/a"
    return "yes" if (value >= target if higher else value <= target) else "NO"


def report(out: dict[str, Any]) -> str:
    parts = []
    targets: list[list[Any]] = []
    if "reads" in out:
        r = out["reads"]
        parts.append(f"### Reads (wrk -t1, median of {r['rounds']} rounds of "
                     f"{r['seconds']:g} s; car of {r['device']})\n")
        parts.append(table(
            ["connections", "healthz req/s", "healthz p50 / p99 ms", "car req/s",
             "car p50 / p99 ms", "car / healthz", "non-2xx + socket errors", "wrk cores (max)",
             "server cores", "other cores (max)"],
            [[s["connections"], f"{s['healthz_rps']:,.0f}",
              f"{s['healthz_p50_ms']:.2f} / {s['healthz_p99_ms']:.2f}",
              f"{s['car_rps']:,.0f}", f"{s['car_p50_ms']:.2f} / {s['car_p99_ms']:.2f}",
              f"{s['car_over_healthz']:.2f}", s["non_2xx"], s["wrk_cores_max"],
              s["server_cores"], s["other_cores_max"]] for s in r["summary"]]))
        t2 = r["car_t2"]
        parts.append(f"\nwrk check: car with -t2 -c{t2['connections']}: {t2['rps']:,.0f} req/s "
                     f"({r['t2_over_t1']:.2f}x -t1), p99 {t2['p99_ms']:.2f} ms, wrk "
                     f"{t2['wrk_cores']} cores, server {t2['server_cores']} cores.")
        best = max(r["summary"], key=lambda s: s["car_rps"])
        targets += [
            [f"car req/s (best: c={best['connections']})", f"{best['car_rps']:,.0f}",
             ">= 5,000", verdict(best["car_rps"], TARGETS["car_rps"], True)],
            [f"car p99 at c={best['connections']}", f"{best['car_p99_ms']:.2f} ms", "<= 10 ms",
             verdict(best["car_p99_ms"], TARGETS["car_p99_ms"], False)],
            [f"car / healthz at c={best['connections']}", f"{best['car_over_healthz']:.2f}",
             ">= 0.80", verdict(best["car_over_healthz"], TARGETS["car_over_healthz"], True)]]
    if "ingest" in out:
        rows = []
        for g in out["ingest"]:
            cb, cs, pc = g["commit_batches"], g["commit_seconds"], g["pipeline_cycle_seconds"]
            rows.append([
                g["connections"], f"{g['fixes_per_s']:,}", f"{g['batches_per_s']:,}",
                f"{g['p50_ms']:.0f} / {g['p99_ms']:.0f}", g["non_2xx"] + g["socket_errors"],
                f"{cb['count']:.0f}, mean {cb['mean']}", f"{cs['mean']} / {le(cs['p99_le'])}",
                f"{pc['count']:.0f}, mean {pc['mean']}, max {le(pc['max_le'])}",
                f"{g['lag_max_batches']} / {g['lag_end_batches']}",
                "not in 300 s" if g["catch_up_s"] is None else g["catch_up_s"],
                g["phone_h_per_device"],
                g["server_cores"], "; ".join(
                    f"{t['cores']}{' (event loop)' if t['event_loop'] else ''}"
                    for t in g["busiest_threads"][:3]), g["wrk_cores"], g["other_cores"]])
        parts.append(f"\n### Ingestion (wrk -t1, batches of {BATCH} fixes, "
                     f"{out['devices']} devices, durable, live pipeline on)\n")
        parts.append(table(
            ["connections", "fixes/s", "batches/s", "POST p50 / p99 ms",
             "non-2xx + socket errors", "commits, batches per commit",
             "commit s mean / p99", "pipeline cycles, s", "lag max / at end (batches)",
             "catch-up s", "phone h per device", "server cores",
             "busiest server threads (cores)", "wrk cores", "other cores"], rows))
        best_i = max(out["ingest"], key=lambda g: g["fixes_per_s"])
        targets.append([f"ingestion fixes/s (c={best_i['connections']})",
                        f"{best_i['fixes_per_s']:,}", ">= 50,000",
                        verdict(best_i["fixes_per_s"], TARGETS["ingest_fixes_per_s"], True)])
    if "parking" in out:
        rows = []
        for p in out["parking"]:
            bg = p["background"]
            load = "none" if bg is None else (
                f"{bg['fixes_per_s']:,} fixes/s (asked {bg['fixes_per_s_asked']:,}, "
                f"-c{bg['connections']}; its POSTs p99 {bg['p99_ms']:.0f} ms)")
            pc = p["pipeline_cycle_seconds"]
            p50 = f"{'>= ' if p['p50_at_least'] else ''}{p['p50_s']}"
            p99 = f"{'>= ' if p['p99_at_least'] else ''}{p['p99_s']}"
            rows.append([load, f"{p['answered']}/{p['trials']}", p50, p99,
                         p["max_s"], p["post_ack_p50_s"],
                         f"{pc['count']:.0f}, mean {pc['mean']}, max {le(pc['max_le'])}",
                         p["lag_end_batches"],
                         f"{p['timed_out']} / {p['decided_early']} / {p['not_parked']}"])
            targets.append([f"parking p99, background {'none' if bg is None else 'on'}",
                            f"{p99} s", "<= 1 s",
                            verdict(p["p99_s"], TARGETS["parking_p99_s"], False)])
        parts.append("\n### Parking latency (last POST sent -> car answer shows the parking)\n")
        parts.append(table(["background ingestion", "trials answered", "p50 s", "p99 s",
                            "max s", "last POST acked, p50 s", "pipeline cycles meanwhile, s",
                            "pipeline lag at the end (batches)",
                            "timed out / decided early / not parked"], rows))
    if "loaded" in out:
        g, bg, k = out["loaded"], out["loaded"]["background"], out["loaded"]["kill"]
        h, c = g["healthz"], g["car"]
        parts.append(f"\n### Under ingestion ({bg['fixes_per_s']:,} fixes/s, asked "
                     f"{bg['fixes_per_s_asked']:,}; its POSTs p99 {bg['p99_ms']:.0f} ms)\n")
        parts.append(table(
            ["connections", "healthz req/s", "healthz p99 ms", "car req/s", "car p99 ms",
             "car / healthz", "kill -9 of a worker: serving again, s",
             "car requests failed meanwhile", "lag after the load: caught up in s"],
            [[c["connections"], f"{h['rps']:,.0f}", f"{h['p99_ms']:.2f}", f"{c['rps']:,.0f}",
              f"{c['p99_ms']:.2f}", f"{g['car_over_healthz']:.2f}",
              "n/a (one worker)" if k is None else k["serving_again_s"],
              "n/a" if k is None else f"{k['car_failed']} of {k['car_requests']:,}",
              "not in 300 s" if g["catch_up_s"] is None else g["catch_up_s"]]]))
        targets += [
            ["car req/s under ingestion", f"{c['rps']:,.0f}", ">= 5,000",
             verdict(c["rps"], TARGETS["car_rps"], True)],
            ["car p99 under ingestion", f"{c['p99_ms']:.2f} ms", "<= 10 ms",
             verdict(c["p99_ms"], TARGETS["car_p99_ms"], False)],
            ["car / healthz under ingestion", f"{g['car_over_healthz']:.2f}", ">= 0.80",
             verdict(g["car_over_healthz"], TARGETS["car_over_healthz"], True)],
            ["lag back to 0 after the load", f"{g['catch_up_s']} s", "<= 2 s",
             verdict(g["catch_up_s"], TARGETS["catch_up_s"], False)]]
        if k is not None:
            targets += [
                ["kill -9 of a worker: its shards serving again", f"{k['serving_again_s']} s",
                 "<= 5 s", verdict(k["serving_again_s"], TARGETS["worker_back_s"], False)],
                ["kill -9 of a worker: failed car requests", str(k["car_failed"]), "0",
                 verdict(k["car_failed"], 0, False)]]
    parts.append("\n### Targets\n")
    parts.append(table(["what", "measured", "target", "met"], targets))
    s = out["server"]
    parts.append(f"\nServer: ready in {s['ready_s'] or 0:.1f} s, exit code {s['exit_code']}, "
                 f"{len(s['log_problems'])} warning/error lines in its log. "
                 f"{os.cpu_count()} cores; {out['wrk_version']}.")
    for line in s["log_problems"][:10]:
        parts.append(f"    {line}")
    others = [r["other_cores"] for r in out.get("reads", {}).get("runs", [])] + [
        g["other_cores"] for g in out.get("ingest", [])]
    if others and max(others) > 0.25:
        parts.append(f"\nOther jobs on the machine used up to {max(others):.2f} cores during "
                     "these runs (the 'other cores' columns): the figures are disturbed; run "
                     "again on a quiet machine.")
    return "\n".join(parts)


def log_problems(log: Path) -> list[str]:
    """The server log's lines that are not routine (warnings, errors, tracebacks), the
    generated-token line excepted."""
    keep = []
    for line in log.read_text(errors="replace").splitlines():
        if any(w in line for w in ("WARNING", "ERROR", "Traceback", "Exception", "CRITICAL",
                                   "[WARN", "[ERR")) and "admin token" not in line:
            keep.append(line[:300])
    return keep


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0],
                                     epilog="Needs wrk: apt-get install wrk")
    parser.add_argument("--parts", nargs="+",
                        choices=["reads", "ingest", "parking", "loaded"],
                        default=["reads", "ingest", "parking", "loaded"])
    parser.add_argument("--workers", type=int,
                        help="`parkloop serve --workers` (default: the server's, one per core)")
    parser.add_argument("--quick", action="store_true",
                        help="a short run: fewer connection counts, rounds, seconds, trials")
    parser.add_argument("--connections", type=int, nargs="+",
                        help="connection counts for the reads (default 8 16 32; quick: 16)")
    parser.add_argument("--rounds", type=int, help="rounds per connection count (3; quick 2)")
    parser.add_argument("--seconds", type=float, help="seconds per wrk run (5; quick 2)")
    parser.add_argument("--ingest-connections", type=int, nargs="+", default=[64])
    parser.add_argument("--ingest-seconds", type=float, help="seconds (20; quick 8)")
    parser.add_argument("--devices", type=int, default=200,
                        help="devices sending in the ingestion and the background load")
    parser.add_argument("--trials", type=int, help="parking trials, each with and without "
                        "background (30; quick 8)")
    parser.add_argument("--trials-budget-s", type=float,
                        help="no new parking trial after this many seconds (90; quick 30)")
    parser.add_argument("--background-fixes", type=int, default=20_000,
                        help="fixes/s of the background ingestion beside the parking trials "
                        "and the loaded reads")
    parser.add_argument("--background-connections", type=int, default=48,
                        help="enough to hold the pace while POSTs take up to "
                        "connections / (fixes/s / 100) s")
    parser.add_argument("--sim-devices", type=int, default=12)
    parser.add_argument("--sim-days", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (store, server log)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON too")
    args = parser.parse_args()
    quick = args.quick
    connections = args.connections or ([16] if quick else [8, 16, 32])
    rounds = args.rounds or (2 if quick else 3)
    seconds = args.seconds or (2.0 if quick else 5.0)
    ingest_s = args.ingest_seconds or (8.0 if quick else 20.0)
    trials = args.trials or (8 if quick else 30)
    budget_s = args.trials_budget_s or (30.0 if quick else 90.0)
    need_wrk()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True
                                 ).stdout.split("\n")[0].split(" [")[0]

    tmp = Path(tempfile.mkdtemp(prefix="parkloop-serve-bench-"))
    server: Server | None = None
    ready_s: float | None = None
    out: dict[str, Any] = {"wrk_version": wrk_version, "devices": args.devices,
                           "cores": os.cpu_count(), "workers": args.workers}
    try:
        start = time.perf_counter()
        sim = build_store(tmp / "store", args.sim_devices, args.sim_days, args.seed)
        print(f"store: {args.sim_devices} devices x {args.sim_days} days and the rule model in "
              f"{time.perf_counter() - start:.0f} s ({tmp})", file=sys.stderr)
        server = Server(tmp / "store", tmp / "serve.log", "bench-" + secrets.token_hex(16),
                        args.workers)
        ready_s = server.wait_ready()
        now = int(time.time() * 1000)
        if "reads" in args.parts:
            out["reads"] = reads(server, sim, connections, rounds, seconds)
        devices_file = tmp / "devices.txt"
        if {"ingest", "parking", "loaded"} & set(args.parts):
            load_devices(server, args.devices, devices_file, args.seed)
        if "ingest" in args.parts:
            # each run's phone time starts 6 h after the last one's (not late, not overlapping)
            out["ingest"] = [
                ingest(server, devices_file, args.devices, c, ingest_s,
                       now - 5 * DAY_MS + i * DAY_MS // 4, f"ingest{i}")
                for i, c in enumerate(args.ingest_connections)]
        if "parking" in args.parts:
            background = (devices_file, args.background_connections,
                          args.background_fixes, now - 3 * DAY_MS)
            out["parking"] = [
                parking(server, trials, budget_s, "idle", now - 2 * DAY_MS, args.seed, None),
                parking(server, trials, budget_s, "busy", now - 2 * DAY_MS, args.seed + 1,
                        background)]
        if "loaded" in args.parts:
            out["loaded"] = loaded(server, sim[0], devices_file, args.background_connections,
                                   args.background_fixes, max(connections), seconds,
                                   now - 4 * DAY_MS)
        server.check_alive()
    finally:
        if server is not None:
            code = server.stop()
            out["server"] = {"ready_s": ready_s,
                             "exit_code": code, "log_problems": log_problems(server.log)}
            if code not in (0, None) or out["server"]["log_problems"]:
                print(f"server log ({server.log}):\n{server.tail()}", file=sys.stderr)
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    print(report(out))
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
