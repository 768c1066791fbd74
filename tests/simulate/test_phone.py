"""The phone: when it samples, how wrong its fixes are, and what it sends."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow as pa

from parkloop.raw.schema import FIX
from parkloop.raw.validate import check
from parkloop.simulate.gps import fixes
from parkloop.simulate.movement import Leg, Segment, Stay
from parkloop.simulate.phone import PhoneProfile, sample_times
from parkloop.simulate.track import Track
from parkloop.simulate.world import make_world

PHONE = PhoneProfile(
    moving_interval_s=1.0, walk_interval_factor=1.0, still_interval_s=60.0, doze_after_s=600.0,
    doze_wake_s=None, noise_sigma_m=8.0, drift_m=25.0, jump_prob=0.005, reports_speed=True,
    provider="fused", reports_altitude=True, reports_accuracy=True, activity=True,
    conf_right=(8.0, 2.0), conf_wrong=(3.0, 3.0), conf_step=0.01)
HOUR = 3600.0


def _day() -> list[Segment]:
    """Three hours at home, a 5 km drive east with a tunnel, eight hours at work."""
    t0, t1 = 3 * HOUR, 3 * HOUR + 500.0
    drive = Leg("car", np.array([t0, t1]), np.array([0.0, 5000.0]), np.zeros(2),
                np.array([[t0 + 200.0, t0 + 260.0]]))
    return [Stay(0.0, t0, np.zeros(2), True), drive,
            Stay(t1, t1 + 8 * HOUR, np.array([5000.0, 0.0]), True)]


def test_no_fixes_in_tunnels_or_while_a_silent_phone_dozes() -> None:
    s = sample_times(_day(), PHONE, np.random.default_rng(0))
    t = s.t_s
    assert not ((t >= 3 * HOUR + 200.0) & (t <= 3 * HOUR + 262.0)).any()
    assert not ((t > PHONE.doze_after_s) & (t < 3 * HOUR)).any()
    end = 3 * HOUR + 500.0
    assert not (t > end + PHONE.doze_after_s).any()
    # the GPS needs a few seconds for its first fix after a doze
    assert t[s.moving].min() >= 3 * HOUR + 5.0
    # while moving about once a second; right after stopping still at that rate
    assert 360 < s.moving.sum() < 460
    assert ((t > end) & (t < end + 60.0)).sum() > 40


def test_a_waking_phone_sends_a_fix_now_and_then() -> None:
    s = sample_times(_day(), replace(PHONE, doze_wake_s=900.0), np.random.default_rng(0))
    dozing = (s.t_s > PHONE.doze_after_s) & (s.t_s < 3 * HOUR)
    assert 5 <= dozing.sum() <= 20


def _errors(prof: PhoneProfile, seed: int = 0) -> tuple[pa.Table, np.ndarray]:
    world = make_world(np.random.default_rng(0))
    walk = Leg("walk", np.array([0.0, 40_000.0]), np.array([0.0, 48_000.0]), np.zeros(2),
               np.zeros((0, 2)))
    rng = np.random.default_rng(seed)
    samples = sample_times([walk], prof, rng)
    table = fixes(world, Track.of([walk]), [walk], samples, prof, 1_741_000_000_000, rng)
    t = (np.asarray(table.column("t_ms")) - 1_741_000_000_000) / 1000.0
    lat, lon = world.to_latlon(*Track.of([walk]).at(t))
    dy = (np.asarray(table.column("lat")) - lat) * 111_195.0
    dx = (np.asarray(table.column("lon")) - lon) * 111_195.0 * np.cos(np.radians(lat))
    return table, np.hypot(dx, dy)


def test_gps_noise_jumps_and_accuracy() -> None:
    table, err = _errors(PHONE)
    n = len(err)
    assert 30_000 < n < 41_000
    jumps = err > 150.0
    assert 0.5 * PHONE.jump_prob * n < jumps.sum() < 1.5 * PHONE.jump_prob * n
    assert err[jumps].max() < 900.0
    sigma = PHONE.noise_sigma_m
    assert 0.6 * sigma < np.median(err[~jumps]) < 1.6 * sigma
    acc = np.asarray(table.column("accuracy_m"))
    assert 0.8 * sigma < np.median(acc[~jumps]) < 2.5 * sigma
    speed = np.asarray(table.column("speed_mps"))
    assert abs(np.median(speed) - 1.2) < 0.1  # 48 km in 40,000 s
    bad, _, _ = check(FIX, table.append_column("seq", pa.array(np.arange(n))),
                      received_ms=1_800_000_000_000)
    assert not bad.any()


def test_optional_fields_follow_the_profile() -> None:
    bare = replace(PHONE, reports_speed=False, provider=None, reports_altitude=False,
                   reports_accuracy=False)
    table, _ = _errors(bare)
    for name in ("accuracy_m", "speed_mps", "bearing_deg", "altitude_m", "provider"):
        assert table.column(name).null_count == table.num_rows, name


def test_drift_while_standing_still_is_tens_of_metres_and_slow() -> None:
    world = make_world(np.random.default_rng(0))
    stay = Stay(0.0, 4 * HOUR, np.zeros(2), True)
    prof = replace(PHONE, noise_sigma_m=0.01, jump_prob=0.0, doze_after_s=4 * HOUR,
                   still_interval_s=30.0)
    rng = np.random.default_rng(2)
    table = fixes(world, Track.of([stay]), [stay], sample_times([stay], prof, rng), prof, 0, rng)
    lat, lon = np.asarray(table.column("lat")), np.asarray(table.column("lon"))
    d = np.hypot((lat - world.params.centre_lat) * 111_195.0,
                 (lon - world.params.centre_lon) * 111_195.0 * np.cos(np.radians(lat)))
    assert 5.0 < d.max() < 150.0
    assert np.median(np.abs(np.diff(d))) < 5.0  # correlated: small steps between fixes
