"""What a phone reports for each fix: the true position plus GPS error, and optional fields.

The error has three parts, all vectorised: a smooth component (real GPS error is correlated
over tens of seconds) plus a little white noise, a slow drift while the person stands still
(a Brownian bridge per stay, tens of metres indoors), and rare single-fix jumps of 200-800 m.
Reported accuracy follows the noise actually applied, except that a jump sometimes claims to be
precise, as on real phones.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from parkloop.simulate.movement import Segment, Stay
from parkloop.simulate.phone import PhoneProfile, SampleTimes
from parkloop.simulate.track import Track
from parkloop.simulate.world import World

INDOOR_NOISE_FACTOR = 2.5
"""GPS noise indoors is this many times the phone's outdoor noise."""
SMOOTH_STEP_S = 20.0
"""Spacing of the knots of the smooth error component, s."""
ALTITUDE_M = 519.0
"""Ground altitude of the simulated city, m (Munich)."""


def _drift(segments: list[Segment], drift_m: float, t_s: np.ndarray,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Drift (m) at ``t_s``: a Brownian bridge over each stay of two minutes or more, zero at
    its ends, knots a minute apart; about ``drift_m`` across indoors, a third of it outdoors."""
    kt, kx, ky = [np.zeros(1)], [np.zeros(1)], [np.zeros(1)]
    for seg in segments:
        if not isinstance(seg, Stay) or seg.t1_s - seg.t0_s < 120.0:
            continue
        n = int((seg.t1_s - seg.t0_s) / 60.0) + 2
        frac = np.linspace(0.0, 1.0, n)
        scale = (drift_m if seg.indoor else drift_m / 3) * 2.0 / np.sqrt(n)
        steps = rng.normal(0.0, scale, size=(2, n))
        steps[:, 0] = 0.0
        walk = np.cumsum(steps, axis=1)
        bridge = walk - frac * walk[:, -1:]
        kt.append(seg.t0_s + frac * (seg.t1_s - seg.t0_s))
        kx.append(bridge[0])
        ky.append(bridge[1])
    t, order = np.unique(np.concatenate(kt), return_index=True)
    return (np.interp(t_s, t, np.concatenate(kx)[order]),
            np.interp(t_s, t, np.concatenate(ky)[order]))


def _masked(values: np.ndarray, present: np.ndarray | bool, type_: pa.DataType) -> pa.Array:
    mask = ~np.broadcast_to(np.asarray(present, dtype=bool), values.shape)
    return pa.array(values, type=type_, mask=mask)


def fixes(world: World, track: Track, segments: list[Segment], samples: SampleTimes,
          prof: PhoneProfile, epoch_ms: int, rng: np.random.Generator) -> pa.Table:
    """The fixes a phone reports at ``samples``: a table with the fix kind's columns (no
    ``seq``), sorted by ``t_ms`` (ms since epoch, distinct)."""
    t_ms, first = np.unique(epoch_ms + np.round(samples.t_s * 1000.0).astype(np.int64),
                            return_index=True)
    t = samples.t_s[first]
    indoor, n = samples.indoor[first], len(first)
    x, y = track.at(t)
    network = indoor & (prof.provider == "gps") & (rng.random(n) < 0.5)
    sigma = prof.noise_sigma_m * np.where(indoor, INDOOR_NOISE_FACTOR, 1.0) * rng.lognormal(
        0.0, 0.25, size=n)
    sigma = np.where(network, rng.uniform(20.0, 60.0, size=n), sigma)
    span = np.arange(t.min(initial=0.0), t.max(initial=0.0) + 2 * SMOOTH_STEP_S, SMOOTH_STEP_S)
    smooth = rng.normal(0.0, 1.0, size=(2, len(span)))
    ex = np.interp(t, span, smooth[0]) * 0.9 + rng.normal(0.0, 0.35, size=n)
    ey = np.interp(t, span, smooth[1]) * 0.9 + rng.normal(0.0, 0.35, size=n)
    dx, dy = _drift(segments, prof.drift_m, t, rng)
    x, y = x + ex * sigma + dx, y + ey * sigma + dy
    jump = rng.random(n) < prof.jump_prob
    r, a = rng.uniform(200.0, 800.0, size=n), rng.uniform(0.0, 2.0 * np.pi, size=n)
    x, y = x + jump * r * np.cos(a), y + jump * r * np.sin(a)
    accuracy = sigma * rng.uniform(1.0, 1.8, size=n)
    accuracy = np.where(jump & (rng.random(n) < 0.5), rng.uniform(150.0, 900.0, size=n),
                        accuracy)
    lat, lon = world.to_latlon(x, y)
    vx, vy = track.velocity(t)
    speed = np.maximum(np.hypot(vx, vy) + rng.normal(0.0, 0.3, size=n), 0.0)
    bearing = (np.degrees(np.arctan2(vx, vy)) + rng.normal(0.0, 4.0, size=n)) % 360.0
    has_speed = prof.reports_speed & ~network
    altitude = ALTITUDE_M + rng.normal(0.0, 3.0, size=n) + ey * sigma * 0.8
    provider = np.where(network, "network", prof.provider or "")
    return pa.table({
        "t_ms": pa.array(t_ms, pa.int64()),
        "lat": pa.array(np.round(lat, 7), pa.float64()),
        "lon": pa.array(np.round(lon, 7), pa.float64()),
        "accuracy_m": _masked(np.round(accuracy, 1), prof.reports_accuracy, pa.float64()),
        "speed_mps": _masked(np.round(speed, 2), has_speed, pa.float64()),
        "bearing_deg": _masked(np.round(bearing, 1) % 360.0, has_speed & (speed >= 0.5),
                               pa.float64()),
        "altitude_m": _masked(np.round(altitude, 1), prof.reports_altitude & ~network,
                              pa.float64()),
        "provider": pa.array(provider, pa.string(),
                             mask=np.full(n, prof.provider is None)),
    })
