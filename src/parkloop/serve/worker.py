"""A pipeline worker: the live pipeline (:class:`~parkloop.serve.live.Live`) of the devices in
its shards, in a process of its own (or, with ``--workers 0``, a thread of the API process).

It never opens the store: the API process (:mod:`parkloop.serve.pipeline`) reads its devices'
new raw rows and sends them (:class:`Take`); the worker pushes them through the devices'
incremental engines, judges the decided leg ends with the champion and sends back the car
answers that changed, as the JSON bytes ``GET .../car`` returns (:class:`Took`). Takes that
queued while it worked are merged into one push per device, so under load its cost follows
the devices that sent something rather than the batches. A publish arrives as :class:`Use`;
the facts and judged leg ends of one device, for the API's facts routes, as :class:`Ask`.

The worker ends when its connection closes (the API process stopped or died) or on
:class:`Stop`; anything it has is rebuilt from the raw log by its successor.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from parkloop.facts.inputs import Read, merge_reads
from parkloop.facts.rules import load_rules
from parkloop.interpret.model import ParkedModel
from parkloop.serve.live import CycleReport, Live, ServedModel

if TYPE_CHECKING:
    from parkloop.facts.features import Signals
    from parkloop.facts.pipeline import Fixes

log = logging.getLogger("parkloop.serve")

DEFER_S = 2.0
"""rows that cannot change an answer at once wait for an idle moment; from this age on
(seconds) they are pushed even while messages wait"""
NICENESS = 10
"""once its replay is done, a worker process yields the CPU to the API process: requests
first, pushes with the rest (the replay itself runs at the server's priority, so a restarted
worker is back soon under load)"""
BACKLOG_STEP = 8
"""devices pushed from the backlog between two looks for new messages"""


class Channel(Protocol):
    """What a worker needs of its connection (a ``multiprocessing`` pipe end, or a pair of
    queues for a worker thread)."""

    def send(self, obj: Any) -> None: ...
    def recv(self) -> Any: ...
    def poll(self, timeout: float | None = 0.0) -> bool: ...


@dataclass(frozen=True)
class Start:
    """What a worker is told when it starts."""

    worker: int
    workers: int
    store: Path
    """for rules versions defined in the store"""
    rules: str
    """the rules' identity (name@hash): the worker refuses to start on other rules"""
    champion: tuple[str, Path] | None
    """the model to serve: registry version and artifacts directory"""


# --- API process -> worker -------------------------------------------------------------------

@dataclass(frozen=True)
class Take:
    """The worker's devices' raw rows of the batches up to ``upto`` (after the previous
    take's), as :func:`~parkloop.facts.inputs.read_batches` gives them."""

    upto: int
    fixes: dict[str, Fixes]
    signals: dict[str, Signals]


@dataclass(frozen=True)
class Use:
    """Judge everything with this champion and serve it."""

    version: str
    artifacts: Path


@dataclass(frozen=True)
class Ask:
    """A question about one device: ``what`` is ``"view"`` (its live facts) or ``"judged"``
    (its judged leg ends)."""

    request: int
    what: str
    device_id: str


@dataclass(frozen=True)
class Stop:
    """End the worker."""


# --- worker -> API process -------------------------------------------------------------------

@dataclass(frozen=True)
class Took:
    """The answers that changed after ``takes`` takes (merged into one push)."""

    takes: int
    report: CycleReport
    answers: dict[str, bytes]


@dataclass(frozen=True)
class Used:
    """Every answer of the worker's devices under the champion ``version``."""

    version: str
    answers: dict[str, bytes]


@dataclass(frozen=True)
class Reply:
    request: int
    value: Any


def run(channel: Channel, start: Start, *, nice_after_replay: bool = False) -> None:
    """The worker's loop: until its channel closes or :class:`Stop` arrives."""
    rules = load_rules(start.rules.split("@", 1)[0], start.store)
    if rules.identity != start.rules:
        raise RuntimeError(f"rules {start.rules} changed under the server: now {rules.identity}")
    _Worker(channel, Live(rules, None if start.champion is None else
                          _served(*start.champion)),
            nice_after_replay=nice_after_replay).run()


class _Worker:
    """A worker's state: its devices' live pipeline and the rows it has not pushed yet.

    Rows that may change an answer at once (:meth:`Live.urgent`) are pushed as they come,
    and their answers sent at once; the others wait in the backlog, merged per device, until
    the worker has nothing else to do, or, once the oldest is :data:`DEFER_S` old, between
    messages. Under load a device's rows are thus pushed once per backlog round, not once
    per read: the cost follows what can change an answer."""

    def __init__(self, channel: Channel, live: Live, *, nice_after_replay: bool = False
                 ) -> None:
        self.channel = channel
        self.live = live
        self.nice_after_replay = nice_after_replay
        self.received = 0
        """the newest batch received"""
        self.backlog: dict[str, Read] = {}
        self.since: dict[str, tuple[float, int]] = {}
        """device -> when its oldest row in the backlog came, and the batch before it; in
        the order devices entered the backlog, so the first is the oldest"""

    def run(self) -> None:
        read_first = False  # after an overdue backlog step, what waits is read first
        while True:
            try:
                waiting = self.channel.poll()
                if self.backlog and (not waiting or (self._overdue() and not read_first)):
                    self._push_backlog()
                    read_first = waiting
                    continue
                read_first = False
                inbox = [self.channel.recv()]
                while self.channel.poll():
                    inbox.append(self.channel.recv())
            except (EOFError, OSError):  # the API process is gone
                return
            for message in _coalesced(inbox):
                if isinstance(message, Stop):
                    return
                self.channel.send(self._handle(message))
                if self.nice_after_replay and isinstance(message, _Merged):
                    os.nice(NICENESS)  # the first take is the replay
                    self.nice_after_replay = False

    @property
    def watermark(self) -> int:
        """The newest batch all of whose rows are pushed."""
        return next(iter(self.since.values()), (0.0, self.received))[1]

    def _handle(self, message: Any) -> Took | Used | Reply:
        live = self.live
        if isinstance(message, _Merged):
            now = time.monotonic()
            push: list[str] = []  # the urgent ones
            for device in sorted(set(message.fixes) | set(message.signals)):
                rows = ({device: message.fixes[device]} if device in message.fixes else {},
                        {device: message.signals[device]} if device in message.signals else {})
                urgent = live.urgent(device, message.fixes.get(device),
                                     message.signals.get(device))
                earlier = self.backlog.get(device)
                self.backlog[device] = rows if earlier is None else merge_reads(earlier, rows)
                self.since.setdefault(device, (now, self.received))
                if urgent:
                    push.append(device)
            self.received = message.upto
            report, answers = self._push(push)
            return Took(message.takes, report, answers)
        if isinstance(message, Use):
            live.use(_served(message.version, message.artifacts))
            return Used(message.version, dict(live.answers))
        if isinstance(message, Ask):
            self._push([message.device_id] if message.device_id in self.backlog else [])
            value = live.view(message.device_id) if message.what == "view" else \
                live.judged(message.device_id)
            return Reply(message.request, value)
        raise TypeError(f"a worker cannot handle {type(message).__name__}")

    def _overdue(self) -> bool:
        oldest = next(iter(self.since.values()), (math.inf, 0))[0]
        return time.monotonic() - oldest >= DEFER_S

    def _push_backlog(self) -> None:
        """Push the devices waiting longest (a few, then look for messages again)."""
        oldest = list(itertools.islice(self.since, BACKLOG_STEP))
        report, answers = self._push(oldest)
        self.channel.send(Took(0, report, answers))

    def _push(self, devices: list[str]) -> tuple[CycleReport, dict[str, bytes]]:
        fixes: dict[str, Fixes] = {}
        signals: dict[str, Signals] = {}
        for device in devices:
            f, g = self.backlog.pop(device)
            del self.since[device]
            fixes |= f
            signals |= g
        report = self.live.take(fixes, signals, self.watermark)
        report = dataclasses.replace(report, upto=self.watermark)
        return report, {d: self.live.answers[d] for d in report.changed}


def process_main(channel: Channel, start: Start) -> None:
    """A worker process's entry point."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: "
                        f"worker {start.worker}: %(message)s")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C reaches the whole process group
        run(channel, start, nice_after_replay=True)


@dataclass(frozen=True)
class _Merged:
    takes: int
    upto: int
    fixes: dict[str, Fixes]
    signals: dict[str, Signals]


def _coalesced(inbox: list[Any]) -> Iterable[Any]:
    """The messages in order, each run of takes merged into one."""
    run: _Merged | None = None
    for message in inbox:
        if isinstance(message, Take):
            if run is None:
                run = _Merged(1, message.upto, message.fixes, message.signals)
            else:
                fixes, signals = merge_reads((run.fixes, run.signals),
                                             (message.fixes, message.signals))
                run = _Merged(run.takes + 1, message.upto, fixes, signals)
            continue
        if run is not None:
            yield run
            run = None
        yield message
    if run is not None:
        yield run


def _served(version: str, artifacts: Path) -> ServedModel:
    return ServedModel(version, ParkedModel.load(artifacts))


__all__ = ["Ask", "Channel", "Reply", "Start", "Stop", "Take", "Took", "Use", "Used",
           "process_main", "run"]
