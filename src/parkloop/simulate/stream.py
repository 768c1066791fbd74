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
their phone asks where the car is, and the person (a :class:`Person`, who knows their own
ground truth) says "yes, here" or "no" about each new answer and reports parkings the answers
missed. Who does is drawn from its own random stream, so the batches sent stay the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Literal

import httpx
import numpy as np
import numpy.typing as npt
import pyarrow as pa

from parkloop.errors import ParkloopError
from parkloop.facts.geo import haversine_m
from parkloop.interpret.labels import MATCH_M, MATCH_S
from parkloop.raw.events import EventBatch
from parkloop.simulate import truth
from parkloop.simulate.device import WORLD_STREAM, simulate_device
from parkloop.simulate.scenarios import scenario as get_scenario
from parkloop.simulate.world import make_world

_NAMES = {"t_ms": "t", "start_ms": "start", "end_ms": "end", "parked_at_ms": "parked_at"}

FEEDBACK_STREAM = 2
"""Tag of the random stream that picks who gives feedback (apart from the world's and the
devices' streams, so picking never moves an event)."""
MISSED_AFTER_S = 900
"""A true parking this long before the newest fix the phone sent, that no answer named, is
reported as missed, s (the model judges a leg end ``features.wait_s``, 600 s, after it)."""
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


@dataclass(frozen=True)
class Statement:
    """One piece of feedback: its kind and the body of ``POST .../feedback``."""

    kind: Literal["yes", "no", "missed"]
    body: dict[str, Any]


@dataclass
class Person:
    """Someone who knows when and where they parked (their device's ground truth: ms since
    the epoch, WGS 84 degrees) and tells the app whether its answers are right.

    An answer is right when a true parking lies within :data:`MATCH_S` and :data:`MATCH_M` of
    it. Nothing is said about times the phone has not sent fixes for.

    >>> p = Person(np.array([600_000]), np.array([48.0]), np.array([11.0]))
    >>> answer = {"status": "parked", "parked_at": "1970-01-01T00:10:30.000Z", "lat": 48.0005,
    ...           "lon": 11.0, "model_version": "1", "rules_version": "v1@abc"}
    >>> p.judge(answer, sent_until_ms=700_000).body["feedback_id"]
    'fb-630000-y'
    >>> p.judge(answer, sent_until_ms=800_000) is None     # judged already
    True
    >>> p.missed(answer, sent_from_ms=0, sent_until_ms=10_000_000)   # it was named
    []
    """

    parked_ms: npt.NDArray[np.int64]
    lat: npt.NDArray[np.float64]
    lon: npt.NDArray[np.float64]
    judged: set[int] = field(default_factory=set)
    """parked_at (ms) of the answers judged"""
    named: npt.NDArray[np.bool_] = field(init=False)
    """true parkings some judged answer named"""
    reported: npt.NDArray[np.bool_] = field(init=False)
    """true parkings reported as missed"""

    def __post_init__(self) -> None:
        self.named = np.zeros(len(self.parked_ms), bool)
        self.reported = np.zeros(len(self.parked_ms), bool)

    @classmethod
    def of(cls, parking: pa.Table) -> Person:
        """From a device's ``truth.parking`` table."""
        return cls(np.asarray(parking.column("parked_at_ms"), np.int64),
                   np.asarray(parking.column("lat"), np.float64),
                   np.asarray(parking.column("lon"), np.float64))

    def judge(self, answer: Mapping[str, Any], sent_until_ms: int) -> Statement | None:
        """"Yes" or "no" about a car answer not judged before, if it says parked at a time the
        phone has sent fixes up to (``sent_until_ms``, ms)."""
        if answer.get("status") != "parked" or answer.get("parked_at") is None \
                or answer.get("lat") is None or answer.get("lon") is None:
            return None
        at = _ms(answer["parked_at"])
        if at > sent_until_ms or at in self.judged:
            return None
        self.judged.add(at)
        lat, lon = float(answer["lat"]), float(answer["lon"])
        near = (np.abs(self.parked_ms - at) <= MATCH_S * 1000) & (
            haversine_m(self.lat, self.lon, lat, lon) <= MATCH_M)
        self.named |= near
        parked = bool(near.any())
        return Statement("yes" if parked else "no", _body(
            f"fb-{at}-{'y' if parked else 'n'}", at, lat, lon, parked, answer, sent_until_ms))

    def missed(self, answer: Mapping[str, Any], sent_from_ms: int, sent_until_ms: int
               ) -> list[Statement]:
        """"You missed where I parked", once for each true parking inside the fixes sent
        (``sent_from_ms`` to ``sent_until_ms``, ms), at least :data:`MISSED_AFTER_S` old,
        that no judged answer named; naming the versions of the current ``answer``."""
        due = np.flatnonzero(self.due(sent_from_ms, sent_until_ms))
        self.reported[due] = True
        return [Statement("missed", _body(
            f"fb-{int(self.parked_ms[i])}-missed", int(self.parked_ms[i]), float(self.lat[i]),
            float(self.lon[i]), True, answer, sent_until_ms)) for i in due]

    def due(self, sent_from_ms: int, sent_until_ms: int) -> npt.NDArray[np.bool_]:
        """The true parkings :meth:`missed` would report now unless an answer names them."""
        return ~self.named & ~self.reported & (self.parked_ms >= sent_from_ms) & (
            self.parked_ms <= sent_until_ms - MISSED_AFTER_S * 1000)


def _body(feedback_id: str, at_ms: int, lat: float, lon: float, parked: bool,
          answer: Mapping[str, Any], said_ms: int) -> dict[str, Any]:
    """The feedback, said at the phone's simulated time ``said_ms``."""
    return {"feedback_id": feedback_id, "t": said_ms, "parked_at": at_ms, "lat": lat,
            "lon": lon,
            "parked": parked, "model_version": answer.get("model_version"),
            "rules_version": answer.get("rules_version")}


def _ms(iso: str) -> int:
    """ms since the epoch of a UTC ISO 8601 time as the server writes it."""
    return int(np.datetime64(iso.removesuffix("Z"), "ms").astype(np.int64))


@dataclass
class _Phone:
    device_id: str
    batches: list[EventBatch]
    person: Person | None = None
    first_fix_ms: int | None = None
    newest_fix_ms: int | None = None
    batch_no: int = 0
    """the newest raw batch number the server gave this phone's batches"""


def gives_feedback(seed: int, index: int, share: float) -> bool:
    """Whether the person of device ``index`` uses the app (and so gives feedback), for a
    ``share`` of people from 0 to 1; the same for the same seed and index.

    >>> [gives_feedback(0, i, 0.5) for i in range(6)] == [gives_feedback(0, i, 0.5)
    ...                                                   for i in range(6)]
    True
    >>> gives_feedback(0, 3, 0.0), gives_feedback(0, 3, 1.0)
    (False, True)
    """
    if share <= 0.0:
        return False
    rng = np.random.default_rng(np.random.SeedSequence([seed, FEEDBACK_STREAM, index]))
    return bool(rng.random() < share)


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
