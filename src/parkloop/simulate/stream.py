"""Simulated phones talking to a running server: the same batches :func:`simulate` stores,
sent over the REST API instead, each device in its own arrival order.

The phones send with the server's admin token (which may write for any device), so a person
can take a device's own token with ``parkloop device token`` while they stream. With ``speed``
set, a batch leaves when its phone would have sent it, with ``speed`` simulated seconds passing
per wall second; without it, as fast as the server takes them. Sending starts once the server
answers ``/readyz``. Batch ids are the simulator's prefixed with the run's first day
(``20250310.20250309-0000``): the simulator numbers batches per UTC day from 0 in every run,
so a run continuing an earlier one would otherwise reuse the ids of the day they share.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

import httpx
import numpy as np

from parkloop.errors import ParkloopError
from parkloop.raw.events import EventBatch
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.scenarios import scenario as get_scenario
from parkloop.simulate.world import make_world

_NAMES = {"t_ms": "t", "start_ms": "start", "end_ms": "end", "parked_at_ms": "parked_at"}


def batch_events(batch: EventBatch) -> list[dict[str, Any]]:
    """A batch's events as the API takes them (JSON field names, in ``seq`` order, nulls
    left out)."""
    events: list[tuple[int, dict[str, Any]]] = []
    for kind, table in batch.tables.items():
        for row in table.to_pylist():
            seq = row.pop("seq")
            event = {"kind": kind, **{_NAMES.get(k, k): v for k, v in row.items()
                                      if v is not None}}
            events.append((seq, event))
    return [e for _, e in sorted(events, key=lambda x: x[0])]


@dataclass(frozen=True)
class StreamSummary:
    devices: int
    batches: int
    events: int
    stored: int
    duplicates: int
    quarantined: int
    seconds: float

    def describe(self) -> str:
        return (f"streamed {self.batches:,} batches ({self.events:,} events) from "
                f"{self.devices} devices in {self.seconds:.1f} s: {self.stored:,} new, "
                f"{self.duplicates:,} duplicates, {self.quarantined:,} events quarantined")


def stream(url: str, admin_token: str, *, devices: int, days: int, seed: int = 0,
           scenario: str = "default", label_share: float = 0.3,
           start: date = date(2025, 3, 3), speed: float | None = None,
           concurrency: int = 16,
           on_batch: Callable[[], None] | None = None) -> StreamSummary:
    """Simulate ``devices`` phones and send their batches to the server at ``url``."""
    sc = get_scenario(scenario)
    world = make_world(np.random.default_rng(np.random.SeedSequence([seed, WORLD_STREAM])))
    runs = [simulate_device(world, sc, seed, i, days, start, label_share)
            for i in range(devices)]
    return asyncio.run(_send_all(url.rstrip("/"), admin_token, [
        (r.device_id, r.sent.batches) for r in runs], f"{start:%Y%m%d}.", speed, concurrency,
        on_batch))


async def _send_all(url: str, admin_token: str,
                    devices: list[tuple[str, list[EventBatch]]], prefix: str,
                    speed: float | None,
                    concurrency: int, on_batch: Callable[[], None] | None) -> StreamSummary:
    started = time.perf_counter()
    admin = {"Authorization": f"Bearer {admin_token}"}
    totals = {"batches": 0, "events": 0, "stored": 0, "duplicates": 0, "quarantined": 0}
    limit = asyncio.Semaphore(concurrency)
    first = min((_sent_at(b) for _, bs in devices for b in bs), default=0)
    async with httpx.AsyncClient(base_url=url, timeout=60.0,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def one(device: str, batches: list[EventBatch]) -> None:
            for batch in batches:
                if speed:
                    due = started + (_sent_at(batch) - first) / 1000.0 / speed
                    await asyncio.sleep(max(0.0, due - time.perf_counter()))
                body = {"batch_id": prefix + batch.batch_id, "events": batch_events(batch)}
                async with limit:
                    r = await client.post(f"/v1/devices/{device}/events", json=body,
                                          headers=admin)
                if r.status_code != 200:
                    raise ParkloopError(f"sending {device} {batch.batch_id}: {_why(r)}")
                out = r.json()
                totals["batches"] += 1
                totals["events"] += out["n_events"]
                totals["stored"] += out["status"] == "stored"
                totals["duplicates"] += out["status"] == "duplicate"
                totals["quarantined"] += out["n_quarantined"] if out["status"] == "stored" \
                    else 0
                if on_batch is not None:
                    on_batch()

        try:
            await _until_ready(client, url)
            started = time.perf_counter()
            await asyncio.gather(*(one(d, bs) for d, bs in devices))
        except httpx.TransportError as exc:
            raise ParkloopError(f"lost the server at {url}: {exc}") from None
    return StreamSummary(len(devices), totals["batches"], totals["events"], totals["stored"],
                         totals["duplicates"], totals["quarantined"],
                         time.perf_counter() - started)


async def _until_ready(client: httpx.AsyncClient, url: str, timeout: float = 120.0) -> None:
    """Wait for the server to answer /readyz (it may still be starting)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if (await client.get("/readyz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise ParkloopError(f"the server at {url} was not ready within {timeout:.0f} s")
        await asyncio.sleep(0.5)


def _sent_at(batch: EventBatch) -> int:
    """When a phone sends a batch: at its newest event (its upload window's end)."""
    return max(int(np.max(t.column("t_ms"))) for t in batch.tables.values() if t.num_rows)


def _why(r: httpx.Response) -> str:
    try:
        return f"{r.status_code} {r.json().get('message', r.text)}"
    except ValueError:
        return f"{r.status_code} {r.text[:200]}"
