"""Soak: phones streaming and asking at a steady rate for ``--minutes`` (default 10) against one
``parkloop serve``; the server's memory over time, errors, and p50/p99 per route.

The server runs over a store built like bench/serve.py's (``--sim-devices`` simulated devices
and the published rule model: p85 speed >= 10 m/s is parked). ``--phones`` phones, each
registered with its own token, drive and park in turns (8 minutes at about 14 m/s, 25
minutes standing, one fix per second of phone time); every ``--every-s`` seconds of wall
time each sends its next ``--fixes`` fixes as one batch (``POST .../events``) and then asks
``GET .../car``. The load is open-loop: each request is due at a fixed time, and its latency
counts from then, so a server that falls behind shows it in the latencies (no coordinated
omission). Every 10 s the server's resident memory (its process tree, ``VmRSS``) and the
live pipeline's lag (``/readyz``: committed - taken-in batches) are sampled.

Memory is "flat" when its growth over the second half of the run (Theil-Sen trend: a
loop pass's spike does not tilt it) is under 2% of that half's median; its rate (MB/min) is
reported either way — the live pipeline keeps
each device's open tail, places and earlier drives, which grow with phone time, not with
requests. The server's closed loop runs on its schedule (loop.toml, every 300 s), as in
production; a pass shows as a step in memory while it trains. Errors: any answer but 200
(or a transport error). Targets: errors 0, memory flat (or explained), p99 of each route
<= 100 ms at the rate the run asks for.

    python bench/soak.py                                # 10 minutes, 30 phones
    python bench/soak.py --minutes 2 --json             # a short check
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from procs import tree
from serve import Server, build_store

T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z, phone time of every phone's first fix
DRIVE_S, PARK_S, SPEED_MPS = 8 * 60, 25 * 60, 14.0
SAMPLE_S = 10.0
P99_TARGET_MS = 100.0


def rss_mb(root: int) -> float:
    """Resident memory of ``root`` and its descendants, MB."""
    total = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


class Phone:
    """A phone's track: drive, park, drive on; fix i is at phone time T0 + i s."""

    def __init__(self, i: int, token: str, rng: random.Random) -> None:
        self.device = f"soak-{i:04d}"
        self.auth = {"Authorization": f"Bearer {token}"}
        self.lat, self.lon = 48.137 + rng.uniform(-.08, .08), 11.575 + rng.uniform(-.12, .12)
        self.heading = rng.uniform(0, 2 * math.pi)
        self.offset = rng.randrange(DRIVE_S + PARK_S)  # phones are not in step
        self.sent = 0

    def fixes(self, n: int) -> list[dict[str, Any]]:
        out = []
        for i in range(self.sent, self.sent + n):
            if (i + self.offset) % (DRIVE_S + PARK_S) < DRIVE_S:
                self.lat += SPEED_MPS * math.cos(self.heading) / 111_195
                self.lon += SPEED_MPS * math.sin(self.heading) / (
                    111_195 * math.cos(math.radians(self.lat)))
            elif (i + self.offset) % (DRIVE_S + PARK_S) == DRIVE_S:
                self.heading += random.Random(i).uniform(-1.5, 1.5)  # the next drive turns
            out.append({"kind": "fix", "t": T0 + i * 1000, "lat": round(self.lat, 7),
                        "lon": round(self.lon, 7), "accuracy_m": 6.0})
        self.sent += n
        return out


class Run:
    def __init__(self) -> None:
        self.lat: dict[str, list[float]] = {"POST events": [], "GET car": []}
        self.minute: list[dict[str, list[float]]] = []
        self.errors: dict[str, int] = {}

    def record(self, route: str, start: float, status: int | str) -> None:
        ms = (time.monotonic() - start) * 1000
        self.lat[route].append(ms)
        minute = int((start - self.t0) // 60)
        while len(self.minute) <= minute:
            self.minute.append({r: [] for r in self.lat})
        self.minute[minute][route].append(ms)
        if status != 200:
            key = f"{route}: {status}"
            self.errors[key] = self.errors.get(key, 0) + 1

    t0 = 0.0


async def phone_loop(client: httpx.AsyncClient, phone: Phone, run: Run, every_s: float,
                     n: int, end: float, first: float) -> None:
    due = first
    while due < end:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        body = {"batch_id": f"s{phone.sent:08d}", "events": phone.fixes(n)}
        try:
            r = await client.post(f"/v1/devices/{phone.device}/events", json=body,
                                  headers=phone.auth)
            status: int | str = r.status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        run.record("POST events", due, status)
        asked = time.monotonic()
        try:
            status = (await client.get(f"/v1/devices/{phone.device}/car",
                                       headers=phone.auth)).status_code
        except httpx.HTTPError as exc:
            status = type(exc).__name__
        run.record("GET car", asked, status)
        due += every_s


async def sampler(server: Server, client: httpx.AsyncClient, run: Run, end: float,
                  samples: list[dict[str, float]]) -> None:
    while time.monotonic() < end:
        lag = None
        try:
            r = (await client.get("/readyz")).json()
            lag = r["raw_committed"] - r["raw_watermark"]
        except httpx.HTTPError:
            pass
        samples.append({"t_s": round(time.monotonic() - run.t0, 1),
                        "rss_mb": round(rss_mb(server.proc.pid), 1),
                        "pipeline_lag_batches": lag})
        await asyncio.sleep(SAMPLE_S)


def theil_sen(points: list[tuple[float, float]]) -> float:
    """The median of the slopes between every two points: a trend a single spike (a loop
    pass training a model) does not tilt."""
    slopes = [(b[1] - a[1]) / (b[0] - a[0]) for i, a in enumerate(points)
              for b in points[i + 1:] if b[0] > a[0]]
    return statistics.median(slopes) if slopes else 0.0


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return round(s[min(len(s) - 1, math.ceil(q * len(s)) - 1)], 1)


async def drive(server: Server, phones: list[Phone], args: argparse.Namespace, run: Run
                ) -> list[dict[str, float]]:
    limits = httpx.Limits(max_connections=args.connections)
    samples: list[dict[str, float]] = []
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0, limits=limits) as client:
        run.t0 = time.monotonic()
        end = run.t0 + args.minutes * 60
        spread = args.every_s / len(phones)
        await asyncio.gather(
            sampler(server, client, run, end, samples),
            *(phone_loop(client, p, run, args.every_s, args.fixes, end, run.t0 + i * spread)
              for i, p in enumerate(phones)))
    return samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--phones", type=int, default=30)
    ap.add_argument("--every-s", type=float, default=3.0,
                    help="wall seconds between a phone's batches")
    ap.add_argument("--fixes", type=int, default=20, help="fixes per batch")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--sim-devices", type=int, default=12)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="parkloop-soak-") as tmp:
        store = Path(tmp) / "store"
        build_store(store, args.sim_devices, 3, args.seed)
        token = secrets.token_urlsafe(24)
        server = Server(store, Path(tmp) / "serve.log", token)
        try:
            ready_s = server.wait_ready()
            rng = random.Random(args.seed)
            phones = [Phone(i, server.register(f"soak-{i:04d}"), rng)
                      for i in range(args.phones)]
            run = Run()
            samples = asyncio.run(drive(server, phones, args, run))
            server.check_alive()
        finally:
            code = server.stop()
    rate = args.phones / args.every_s
    half = [(s["t_s"] / 60, s["rss_mb"]) for s in samples if s["t_s"] >= args.minutes * 30]
    slope = theil_sen(half)
    growth = slope * args.minutes / 2
    level = statistics.median(v for _, v in half) if half else 0.0
    report: dict[str, Any] = {
        "minutes": args.minutes, "phones": args.phones,
        "asked_per_s": {"POST events": rate, "GET car": rate,
                        "fixes": rate * args.fixes},
        "server_ready_s": round(ready_s, 1), "server_exit_code": code,
        "requests": {r: len(v) for r, v in run.lat.items()},
        "errors": run.errors, "errors_total": sum(run.errors.values()),
        "latency_ms": {r: {"p50": pct(v, .50), "p99": pct(v, .99), "max": pct(v, 1.0)}
                       for r, v in run.lat.items()},
        "per_minute": [{"minute": i, **{f"{r} p99": pct(v, .99) for r, v in m.items()},
                        "requests": sum(len(v) for v in m.values())}
                       for i, m in enumerate(run.minute)],
        "memory_mb": {"first": samples[0]["rss_mb"] if samples else None,
                      "last": samples[-1]["rss_mb"] if samples else None,
                      "max": max((s["rss_mb"] for s in samples), default=None),
                      "second_half_growth": round(growth, 1),
                      "second_half_growth_mb_per_min": round(slope, 2),
                      "flat": bool(half) and abs(growth) < 0.02 * level},
        "samples": samples,
    }
    report["targets_met"] = {
        "errors_0": report["errors_total"] == 0,
        **{f"{r} p99 <= {P99_TARGET_MS:g} ms": (v["p99"] or 0) <= P99_TARGET_MS
           for r, v in report["latency_ms"].items()}}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"soak: {args.phones} phones, {rate:g} batches/s of {args.fixes} fixes + {rate:g} "
          f"car asks/s for {args.minutes:g} min (server ready in {ready_s:.1f} s)")
    for r, v in report["latency_ms"].items():
        print(f"  {r:12s} {report['requests'][r]:>7,} requests  p50 {v['p50']} ms  "
              f"p99 {v['p99']} ms  max {v['max']} ms")
    print(f"  errors: {report['errors_total']} {run.errors or ''}")
    mem = report["memory_mb"]
    print(f"  memory (server tree RSS): first {mem['first']} MB, max {mem['max']} MB, last "
          f"{mem['last']} MB; second half {mem['second_half_growth']:+} MB "
          f"({'flat' if mem['flat'] else 'growing'})")
    for s in samples[:: max(1, len(samples) // 12)]:
        print(f"    t={s['t_s']:>6} s  rss {s['rss_mb']:>7} MB  lag {s['pipeline_lag_batches']}")
    for m in report["per_minute"]:
        print(f"  minute {m['minute']:>2}: " + ", ".join(
            f"{k} {v}" for k, v in m.items() if k != "minute"))
    print(f"  targets met: {report['targets_met']}")
    sys.exit(0 if all(report["targets_met"].values()) else 1)


if __name__ == "__main__":
    main()
