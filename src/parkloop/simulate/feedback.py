"""Simulated people who use the app: each knows their device's ground truth (when and where
they really parked) and tells the server whether its car answers are right, as feedback.

:func:`parkloop.simulate.stream.stream` asks the server for a phone's answer after each new
batch and passes it to the phone's :class:`Person`; :func:`gives_feedback` picks who uses
the app, from a random stream of its own, so picking never moves a simulated event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa

from parkloop.facts.geo import haversine_m
from parkloop.interpret.labels import MATCH_M, MATCH_S

FEEDBACK_STREAM = 2
"""Tag of the random stream that picks who gives feedback (apart from the world's and the
devices' streams, so picking never moves an event)."""
MISSED_AFTER_S = 900
"""A true parking this long before the newest fix the phone sent, that no answer named, is
reported as missed, s (the model judges a leg end ``features.wait_s``, 600 s, after it)."""


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
