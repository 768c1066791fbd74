"""Simulated phones talking to a running server: the same batches :func:`simulate` stores,
sent over the REST API instead, each device in its own arrival order.

The phones send with the server's admin token (which may write for any device), so a person
can take a device's own token with ``parkloop device token`` while they stream. With ``speed``
set, a batch leaves when its phone would have sent it, with ``speed`` simulated seconds passing
per wall second; without it, as fast as the server takes them. Sending starts once the server
answers ``/readyz``. Batch ids are the simulator's prefixed with the run's first day
(``20250310.20250309-0000``): the simulator numbers batches per UTC day from 0 in every run,
so a run continuing an earlier one would otherwise reuse the ids of the day they share.

With ``feedback_share`` set, that share of the people also use the app: after each new batch
their phone asks where the car is, and the person (a
:class:`~parkloop.simulate.feedback.Person`, who knows their own ground truth) says "yes,
here" or "no" about each new answer and reports parkings the answers missed. Who does is
drawn from its own random stream, so the batches sent stay the same.
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
from parkloop.simulate import truth
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.feedback import Person, Statement, gives_feedback
from parkloop.simulate.scenarios import scenario as get_scenario
from parkloop.simulate.world import make_world

_NAMES = {"t_ms": "t", "start_ms": "start", "end_ms": "end", "parked_at_ms": "parked_at"}

CATCH_UP_S = 60.0
"""How long a phone waits for the server's live answers to include its batches, s."""


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
    feedback_devices: int = 0
    """people who use the app (ask where their car is and give feedback)"""
    car_asks: int = 0
    """``GET /v1/devices/{id}/car`` requests made"""
    feedback_yes: int = 0
    """"yes, I parked here" about an answer"""
    feedback_no: int = 0
    """"no, I did not park here" about an answer"""
    feedback_missed: int = 0
    """"you missed where I parked": a true parking no answer named"""

    def describe(self) -> str:
        text = (f"streamed {self.batches:,} batches ({self.events:,} events) from "
                f"{self.devices} devices in {self.seconds:.1f} s: {self.stored:,} new, "
                f"{self.duplicates:,} duplicates, {self.quarantined:,} events quarantined")
        if self.feedback_devices:
            text += (f"; {self.feedback_devices} people asked {self.car_asks:,} times where "
                     f"their car is and said {self.feedback_yes:,} yes, {self.feedback_no:,} "
                     f"no, and reported {self.feedback_missed:,} missed parkings")
        return text


@dataclass
class _Phone:
    device_id: str
    batches: list[EventBatch]
    person: Person | None = None
    first_fix_ms: int | None = None
    newest_fix_ms: int | None = None
    batch_no: int = 0
    """the newest raw batch number the server gave this phone's batches"""


def stream(url: str, admin_token: str, *, devices: int, days: int, seed: int = 0,
           scenario: str = "default", label_share: float = 0.3,
           start: date = date(2025, 3, 3), speed: float | None = None,
           concurrency: int = 16, feedback_share: float = 0.0,
           on_batch: Callable[[], None] | None = None,
           transport: httpx.AsyncBaseTransport | None = None) -> StreamSummary:
    """Simulate ``devices`` phones and send their batches to the server at ``url``; the people
    of ``feedback_share`` of them (0 to 1) also ask where their car is and give feedback.
    ``transport`` replaces the network (tests: an :class:`httpx.MockTransport`)."""
    if not 0.0 <= feedback_share <= 1.0:
        raise ParkloopError(f"feedback share {feedback_share} is not between 0 and 1")
    sc = get_scenario(scenario)
    world = make_world(np.random.default_rng(np.random.SeedSequence([seed, WORLD_STREAM])))
    phones = []
    for i in range(devices):
        run = simulate_device(world, sc, seed, i, days, start, label_share)
        phone = _Phone(run.device_id, run.sent.batches)
        if gives_feedback(seed, i, feedback_share):
            phone.person = Person.of(truth.tables(world, run, sc.name, seed)["parking"])
        phones.append(phone)
    return asyncio.run(_send_all(url.rstrip("/"), admin_token, phones, f"{start:%Y%m%d}.",
                                 speed, concurrency, on_batch, transport))


async def _send_all(url: str, admin_token: str, phones: list[_Phone], prefix: str,
                    speed: float | None, concurrency: int,
                    on_batch: Callable[[], None] | None,
                    transport: httpx.AsyncBaseTransport | None) -> StreamSummary:
    started = time.perf_counter()
    admin = {"Authorization": f"Bearer {admin_token}"}
    totals = {"batches": 0, "events": 0, "stored": 0, "duplicates": 0, "quarantined": 0,
              "car_asks": 0, "yes": 0, "no": 0, "missed": 0}
    limit = asyncio.Semaphore(concurrency)
    first = min((_sent_at(b) for p in phones for b in p.batches), default=0)
    async with httpx.AsyncClient(base_url=url, timeout=60.0, transport=transport,
                                 limits=httpx.Limits(max_connections=concurrency)) as client:
        async def car(phone: _Phone) -> dict[str, Any]:
            """The app's answer; ``{}`` while the server does not know the device yet."""
            async with limit:
                r = await client.get(f"/v1/devices/{phone.device_id}/car", headers=admin)
            totals["car_asks"] += 1
            if r.status_code in (404, 503):
                return {}
            if r.status_code != 200:
                raise ParkloopError(f"asking where {phone.device_id}'s car is: {_why(r)}")
            answer: dict[str, Any] = r.json()
            return answer

        async def say(phone: _Phone, statement: Statement) -> None:
            async with limit:
                r = await client.post(f"/v1/devices/{phone.device_id}/feedback",
                                      json=statement.body, headers=admin)
            if r.status_code != 200:
                raise ParkloopError(f"feedback {statement.body['feedback_id']} of "
                                    f"{phone.device_id}: {_why(r)}")
            totals[statement.kind] += 1

        async def caught_up(phone: _Phone) -> None:
            """Until the live answers include every batch this phone sent."""
            deadline = time.monotonic() + CATCH_UP_S
            while True:
                async with limit:
                    r = await client.get("/readyz")
                if r.status_code == 200 and (r.json().get("raw_watermark") or 0) >= \
                        phone.batch_no:
                    return
                if time.monotonic() > deadline:
                    raise ParkloopError(f"the server at {url} did not take in the batches of "
                                        f"{phone.device_id} within {CATCH_UP_S:.0f} s")
                await asyncio.sleep(0.05)

        async def look(phone: _Phone, person: Person, sent_until_ms: int
                       ) -> dict[str, Any]:
            """Ask where the car is and judge the answer."""
            answer = await car(phone)
            if (said := person.judge(answer, sent_until_ms)) is not None:
                await say(phone, said)
            return answer

        async def use_app(phone: _Phone, person: Person, *, settle: bool = False) -> None:
            """Look at the app after a new batch. Before reporting missed parkings, and with
            ``settle`` (after the phone's last batch), first let the server take in all the
            phone sent, so that an answer still on its way is not taken for a miss."""
            if phone.first_fix_ms is None or phone.newest_fix_ms is None:
                return
            sent = (phone.first_fix_ms, phone.newest_fix_ms)
            if not settle:
                await look(phone, person, sent[1])
                if not person.due(*sent).any():
                    return
            await caught_up(phone)
            answer = await look(phone, person, sent[1])
            for said in person.missed(answer, *sent):
                await say(phone, said)

        async def one(phone: _Phone) -> None:
            device = phone.device_id
            for batch in phone.batches:
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
                # a batch the server had already is a retry, not a new moment for the person
                # (so running a stream again says nothing twice)
                if phone.person is not None and out["status"] == "stored":
                    phone.batch_no = max(phone.batch_no, int(out["batch_no"]))
                    _saw_fixes(phone, batch)
                    await use_app(phone, phone.person)
            if phone.person is not None and phone.batch_no:
                await use_app(phone, phone.person, settle=True)

        try:
            await _until_ready(client, url)
            started = time.perf_counter()
            await asyncio.gather(*(one(p) for p in phones))
        except httpx.TransportError as exc:
            raise ParkloopError(f"lost the server at {url}: {exc}") from None
    return StreamSummary(len(phones), totals["batches"], totals["events"], totals["stored"],
                         totals["duplicates"], totals["quarantined"],
                         time.perf_counter() - started,
                         feedback_devices=sum(p.person is not None for p in phones),
                         car_asks=totals["car_asks"], feedback_yes=totals["yes"],
                         feedback_no=totals["no"], feedback_missed=totals["missed"])


def _saw_fixes(phone: _Phone, batch: EventBatch) -> None:
    """Widen the span of fix times the phone has sent by those of ``batch``."""
    fixes = batch.tables.get("fix")
    if fixes is None or not fixes.num_rows:
        return
    t = np.asarray(fixes.column("t_ms"))
    lo, hi = int(t.min()), int(t.max())
    phone.first_fix_ms = lo if phone.first_fix_ms is None else min(phone.first_fix_ms, lo)
    phone.newest_fix_ms = hi if phone.newest_fix_ms is None else max(phone.newest_fix_ms, hi)


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
