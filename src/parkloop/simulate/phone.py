"""Phones: the profile each device draws, and when it takes location fixes.

A phone samples often while its owner moves, rarely while they stand still, and not at all
(or only on rare wake-ups) once it dozes during a long rest; it takes a while to get a fix
again when its owner sets off, and it loses the sky in tunnels.

>>> from parkloop.simulate.movement import Stay
>>> from parkloop.simulate.scenarios import scenario
>>> prof = draw_profile(scenario("default").phone, np.random.default_rng(0))
>>> s = sample_times([Stay(0.0, 7200.0, np.zeros(2), True)], prof, np.random.default_rng(1))
>>> bool(s.t_s.max() <= 7200.0) and not s.moving.any()
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parkloop.simulate.movement import Leg, Segment
from parkloop.simulate.scenarios import PhoneMix

SETTLE_S = 90.0
"""After moving, a phone keeps sampling at its moving rate for this long before slowing, s."""


@dataclass(frozen=True)
class PhoneProfile:
    """How one phone behaves. Units in the names."""

    moving_interval_s: float
    walk_interval_factor: float
    """walking is sampled this many times more sparsely than riding (adaptive phones)"""
    still_interval_s: float
    doze_after_s: float
    doze_wake_s: float | None
    """interval between wake-up fixes while dozing; None: no fixes at all"""
    noise_sigma_m: float
    drift_m: float
    jump_prob: float
    reports_speed: bool
    provider: str | None
    reports_altitude: bool
    reports_accuracy: bool
    activity: bool
    conf_right: tuple[float, float]
    conf_wrong: tuple[float, float]
    conf_step: float


def draw_profile(mix: PhoneMix, rng: np.random.Generator) -> PhoneProfile:
    """Draw one phone from ``mix``."""
    silent = rng.random() < mix.doze_silent_share
    wake = float(rng.uniform(*mix.doze_wake_s))
    return PhoneProfile(
        moving_interval_s=float(rng.choice(mix.moving_interval_s)),
        walk_interval_factor=float(rng.choice([1.0, 1.0, 2.0, 3.0])),
        still_interval_s=float(rng.uniform(*mix.still_interval_s)),
        doze_after_s=float(rng.uniform(*mix.doze_after_s)),
        doze_wake_s=None if silent else wake,
        noise_sigma_m=float(rng.uniform(*mix.noise_sigma_m)),
        drift_m=float(rng.uniform(*mix.drift_m)),
        jump_prob=float(rng.uniform(*mix.jump_prob)),
        reports_speed=bool(rng.random() < mix.speed_share),
        provider=str(rng.choice(["gps", "fused"])) if rng.random() < mix.provider_share
        else None,
        reports_altitude=bool(rng.random() < mix.altitude_share),
        reports_accuracy=bool(rng.random() < 0.95),
        activity=bool(rng.random() < mix.activity_share),
        conf_right=mix.activity_conf_right, conf_wrong=mix.activity_conf_wrong,
        conf_step=mix.activity_conf_step)


@dataclass(frozen=True)
class SampleTimes:
    """When the phone took fixes (s), and whether the person was moving / indoors then."""

    t_s: np.ndarray
    moving: np.ndarray
    indoor: np.ndarray


def _ticks(t0: float, t1: float, interval_s: float, jitter: float,
           rng: np.random.Generator) -> np.ndarray:
    """Times from ``t0`` (inclusive) to ``t1`` (exclusive) about ``interval_s`` apart."""
    if t1 <= t0:
        return np.zeros(0)
    n = int((t1 - t0) / (interval_s * (1 - jitter))) + 2
    t = t0 + np.concatenate([[0.0], np.cumsum(interval_s * rng.uniform(
        1 - jitter, 1 + jitter, size=n))])
    return t[t < t1]


def sample_times(segments: list[Segment], prof: PhoneProfile,
                 rng: np.random.Generator) -> SampleTimes:
    """Fix times over a timeline: per segment a vectorised draw (one loop step per leg or
    stay, never per fix)."""
    ts, mv, ind = [], [], []
    dozed = True  # the phone wakes up on the first motion of the simulation
    for seg in segments:
        if isinstance(seg, Leg):
            interval = prof.moving_interval_s * (
                prof.walk_interval_factor if seg.mode == "walk" else 1.0)
            # after a doze the GPS needs time for its first fix
            start = seg.start_s + (rng.uniform(5.0, 60.0) if dozed else rng.uniform(0.0, 2.0))
            t = _ticks(start, seg.end_s, interval, 0.1, rng)
            t = t[rng.random(len(t)) >= 0.02]  # fixes the phone simply misses
            for g0, g1 in seg.gaps_s:
                t = t[(t < g0) | (t > g1 + rng.uniform(2.0, 10.0))]
            ts.append(t)
            mv.append(np.ones(len(t), dtype=bool))
            ind.append(np.zeros(len(t), dtype=bool))
            dozed = False
            continue
        # right after moving the phone keeps its moving rate for a while (the settle time)
        settled = min(seg.t1_s, seg.t0_s + (0.0 if dozed else SETTLE_S))
        awake_until = max(settled, min(seg.t1_s, seg.t0_s + prof.doze_after_s))
        t = np.concatenate([
            _ticks(seg.t0_s + rng.uniform(0.0, 2.0), settled, prof.moving_interval_s, 0.1, rng),
            _ticks(settled + rng.uniform(0.0, prof.still_interval_s), awake_until,
                   prof.still_interval_s, 0.3, rng)])
        dozed = seg.t1_s > awake_until
        if dozed and prof.doze_wake_s is not None:
            t = np.concatenate([t, _ticks(awake_until + rng.uniform(0.0, prof.doze_wake_s),
                                          seg.t1_s, prof.doze_wake_s, 0.5, rng)])
        ts.append(t)
        mv.append(np.zeros(len(t), dtype=bool))
        ind.append(np.full(len(t), seg.indoor))
    return SampleTimes(np.concatenate(ts), np.concatenate(mv), np.concatenate(ind))
