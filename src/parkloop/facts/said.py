"""What the person told us before: their own statements as facts about their later leg ends.

A person's labels ("I went by car from 8:10 to 8:40", "by bus") and feedback ("yes, I parked
here", "no") are raw statements. For a leg end they give a personal history that no pooled
model can know: how often this person's answered trips were by car, whether this leg ends
near a place where they said they parked (people park in few places), whether it starts near
their last parking (their car is picked up where it was left), how long ago they last drove.

Causal, like every feature: a statement counts for a leg end only if it was *said* before the
leg end's decision time and is *about* something that ended before the leg end's own match
window (:data:`ABOUT_MARGIN_MS`): never the statement about the candidate itself (a label
ending at this leg end, a label of the ride it halts inside, feedback on this answer).

- a ``label`` is said at its ``t_ms`` (GeoLife: the span's end) and is about its span's end;
  ``car`` is a car statement, ``walk``/``run`` say nothing about vehicles and are left out,
  every other mode (bus, taxi, train, subway, bike, ...) is an *other* statement. It is
  placed where the vehicle leg ending nearest in time to its end ended (within the margin),
  since the person's drives are what the engine carries from one restart to the next;
- a ``feedback`` is said at its ``t_ms`` and is about ``parked_at_ms`` at its own position:
  ``parked`` true is a car statement, false an other statement.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parkloop.facts.drives import DriveHistory
from parkloop.facts.geo import haversine_m

ABOUT_MARGIN_MS = 300_000
"""a statement about something ending within this of a leg end's end may be about the leg end
itself (the labels' match window), ms"""
SILENT_MODES = ("walk", "run")
"""label modes that say nothing about a vehicle"""
PRIOR = 1.0
"""pseudo-count of each side in ``said_car_share``: with nothing said it is 0.5"""

SAID_FEATURES = (
    "said_car_before", "said_other_before", "said_car_share", "said_car_near_m",
    "said_other_near_m", "start_near_said_car_m", "since_said_car_s",
)
"""What :func:`said_features` returns, in order."""


@dataclass(frozen=True)
class Statements:
    """A person's statements, in the order :func:`Statements.of` sorts them: when each was
    said (``said_ms``), when what it is about ended (``about_ms``), car or not (``car``) and
    where (``lat``/``lon``; NaN for labels, which are placed by the drives)."""

    said_ms: np.ndarray
    about_ms: np.ndarray
    car: np.ndarray
    lat: np.ndarray
    lon: np.ndarray

    @classmethod
    def none(cls) -> Statements:
        i, f = np.zeros(0, np.int64), np.zeros(0)
        return cls(i, i, np.zeros(0, bool), f, f)

    @classmethod
    def of(cls, said_ms: np.ndarray, about_ms: np.ndarray, car: np.ndarray, lat: np.ndarray,
           lon: np.ndarray) -> Statements:
        """Statements in a canonical order (by about, said, car, position), so that readers
        that meet them in another order give the same facts."""
        said, about = np.asarray(said_ms, np.int64), np.asarray(about_ms, np.int64)
        car_, la, lo = np.asarray(car, bool), np.asarray(lat, float), np.asarray(lon, float)
        order = np.lexsort((np.nan_to_num(lo, nan=-999.0), np.nan_to_num(la, nan=-999.0),
                            car_, said, about))
        return cls(said[order], about[order], car_[order], la[order], lo[order])

    @classmethod
    def from_events(cls, label_t_ms: np.ndarray, label_end_ms: np.ndarray, label_mode: np.ndarray,
                    fb_t_ms: np.ndarray, fb_parked_at_ms: np.ndarray, fb_lat: np.ndarray,
                    fb_lon: np.ndarray, fb_parked: np.ndarray) -> Statements:
        """The statements of a device's raw ``label`` and ``feedback`` events."""
        modes = np.asarray(label_mode, object)
        keep = ~np.isin(modes, SILENT_MODES)
        n = int(keep.sum())
        return cls.of(
            np.concatenate([np.asarray(label_t_ms, np.int64)[keep],
                            np.asarray(fb_t_ms, np.int64)]),
            np.concatenate([np.asarray(label_end_ms, np.int64)[keep],
                            np.asarray(fb_parked_at_ms, np.int64)]),
            np.concatenate([modes[keep] == "car", np.asarray(fb_parked, bool)]),
            np.concatenate([np.full(n, np.nan), np.asarray(fb_lat, float)]),
            np.concatenate([np.full(n, np.nan), np.asarray(fb_lon, float)]))

    def __len__(self) -> int:
        return len(self.said_ms)

    def take(self, keep: np.ndarray) -> Statements:
        return Statements(self.said_ms[keep], self.about_ms[keep], self.car[keep],
                          self.lat[keep], self.lon[keep])

    def extend(self, other: Statements) -> Statements:
        return Statements.of(*(np.concatenate([a, b]) for a, b in zip(
            (self.said_ms, self.about_ms, self.car, self.lat, self.lon),
            (other.said_ms, other.about_ms, other.car, other.lat, other.lon), strict=True)))


def placed(statements: Statements, drives: DriveHistory) -> tuple[np.ndarray, np.ndarray]:
    """Each statement's position: its own, else the end of the drive that ended nearest in
    time to what it is about (within :data:`ABOUT_MARGIN_MS`; ties: the earlier), else NaN."""
    lat, lon = statements.lat.copy(), statements.lon.copy()
    todo = np.flatnonzero(np.isnan(lat))
    if len(todo) and len(drives):
        order = np.argsort(drives.end_ms, kind="stable")
        ends = drives.end_ms[order]
        at = statements.about_ms[todo]
        right = np.clip(np.searchsorted(ends, at), 0, len(ends) - 1)
        left = np.clip(right - 1, 0, len(ends) - 1)
        pick = np.where(np.abs(ends[left] - at) <= np.abs(ends[right] - at), left, right)
        ok = np.abs(ends[pick] - at) <= ABOUT_MARGIN_MS
        lat[todo[ok]] = drives.end_lat[order][pick[ok]]
        lon[todo[ok]] = drives.end_lon[order][pick[ok]]
    return lat, lon


def said_features(start_ms: np.ndarray, start_lat: np.ndarray, start_lon: np.ndarray,
                  end_ms: np.ndarray, end_lat: np.ndarray, end_lon: np.ndarray,
                  decided_ms: np.ndarray, statements: Statements, drives: DriveHistory
                  ) -> dict[str, np.ndarray]:
    """For each leg (start and end time and position, decision time), from the statements
    that count for it (see the module): how many said car and other, the smoothed share of
    car, the distance from its end to the nearest car and other statement, the distance from
    its start to the latest car statement and the time since it (NaN where there is none),
    in metres and seconds."""
    n, m = len(end_ms), len(statements)
    nan = np.full(n, np.nan)
    if m == 0:
        zero = np.zeros(n, np.int64)
        return dict(zip(SAID_FEATURES, (zero, zero, np.full(n, 0.5), nan, nan, nan, nan),
                        strict=True))
    s_lat, s_lon = placed(statements, drives)
    counts = ((statements.said_ms[None, :] < np.asarray(decided_ms)[:, None])
              & (statements.about_ms[None, :] < np.asarray(end_ms)[:, None] - ABOUT_MARGIN_MS))
    car = statements.car[None, :]
    n_car = (counts & car).sum(axis=1)
    n_other = (counts & ~car).sum(axis=1)
    share = (n_car + PRIOR) / (n_car + n_other + 2 * PRIOR)
    d_end = haversine_m(np.asarray(end_lat)[:, None], np.asarray(end_lon)[:, None],
                        s_lat[None, :], s_lon[None, :])
    with np.errstate(invalid="ignore"):
        car_near = np.where(counts & car & ~np.isnan(d_end), d_end, np.inf).min(axis=1)
        other_near = np.where(counts & ~car & ~np.isnan(d_end), d_end, np.inf).min(axis=1)
    # the latest car statement that counts (statements are sorted by what they are about)
    col = np.arange(m)[None, :]
    latest = np.where(counts & car, col, -1).max(axis=1)
    has = latest >= 0
    k = np.maximum(latest, 0)
    start_near = np.where(has, haversine_m(np.asarray(start_lat), np.asarray(start_lon),
                                           s_lat[k], s_lon[k]), np.nan)
    since = np.where(has, (np.asarray(start_ms) - statements.about_ms[k]) / 1000.0, np.nan)
    return dict(zip(SAID_FEATURES, (
        n_car.astype(np.int64), n_other.astype(np.int64), share,
        np.where(np.isfinite(car_near), car_near, np.nan),
        np.where(np.isfinite(other_near), other_near, np.nan), start_near, since), strict=True))


__all__ = ["ABOUT_MARGIN_MS", "SAID_FEATURES", "Statements", "placed", "said_features"]
