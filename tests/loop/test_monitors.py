"""Monitors and thresholds without a store: the drift test's false-alarm rate and power,
hysteresis, and the loop's configuration."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parkloop.loop.config import Drift, LoopConfigError, load_config
from parkloop.loop.monitors import Reading, drift
from parkloop.loop.run import _states

FEATURES = ("speed", "distance", "halts", "top", "gap")


def leg_ends(rng: np.random.Generator, n: int, *, speed_scale: float = 1.0) -> pa.Table:
    """Leg-end-like columns: skewed continuous values, counts, a flag, and missing values."""
    gap = rng.exponential(60.0, n)
    gap[rng.random(n) < 0.2] = np.nan
    return pa.table({
        "speed": rng.gamma(4.0, 3.0 * speed_scale, n),
        "distance": rng.lognormal(7.0, 1.2, n),
        "halts": rng.poisson(3.0, n).astype(np.int64),
        "top": rng.random(n) < 0.3,
        "gap": gap})


@pytest.mark.parametrize("n", [30, 200, 2000])
def test_drift_false_alarm_rate_stays_at_alpha_whatever_the_sample_size(n: int) -> None:
    """Reference and recent from one distribution: a pass calls any feature moved in at most
    about ``alpha`` of the passes (Bonferroni over five features; ties in counts and flags only
    make the test conservative), at 30 leg ends as at 2,000."""
    rng = np.random.default_rng(n)
    config = Drift(alarm=0.2, clear=0.1, min_samples=20, alpha=0.05, min_effect=0.0)
    passes = 200
    alarms = sum(
        bool(drift(leg_ends(rng, 2000), leg_ends(rng, n), FEATURES, config).value)
        for _ in range(passes))
    bound = 0.05 + 3 * np.sqrt(0.05 * 0.95 / passes)
    assert alarms / passes <= bound, f"{alarms} false alarms in {passes} passes at n={n}"


def test_drift_sees_a_real_shift_and_names_the_feature() -> None:
    rng = np.random.default_rng(1)
    config = Drift(alarm=0.2, clear=0.1, min_samples=20, alpha=0.01, min_effect=0.1)
    found = [drift(leg_ends(rng, 2000), leg_ends(rng, 200, speed_scale=1.5), FEATURES, config)
             for _ in range(50)]
    assert sum(r.detail["moved"] == ["speed"] for r in found) >= 45
    assert all(r.value == pytest.approx(0.2) for r in found if r.detail["moved"] == ["speed"])


def test_drift_ignores_a_shift_too_small_to_matter_in_a_huge_sample() -> None:
    """With 50,000 leg ends a 2 % change of speeds is significant, but below ``min_effect``."""
    rng = np.random.default_rng(2)
    reference, recent = leg_ends(rng, 50_000), leg_ends(rng, 50_000, speed_scale=1.02)
    strict = Drift(alarm=0.2, clear=0.1, min_samples=20, alpha=0.01, min_effect=0.0)
    assert "speed" in drift(reference, recent, FEATURES, strict).detail["moved"]
    sensible = strict.model_copy(update={"min_effect": 0.1})
    assert drift(reference, recent, FEATURES, sensible).value == 0.0


def test_drift_is_not_judged_on_too_few_leg_ends() -> None:
    rng = np.random.default_rng(3)
    config = Drift(alarm=0.2, clear=0.1, min_samples=50, alpha=0.01, min_effect=0.1)
    reading = drift(leg_ends(rng, 500), leg_ends(rng, 49), FEATURES, config)
    assert reading.value is None
    assert "fewer than 50" in reading.note


def _pass(values: dict[str, float | None], previous: dict[str, object] | None
          ) -> dict[str, dict[str, object]]:
    return _states({k: Reading(v, 100) for k, v in values.items()}, load_config(), previous)


def test_a_monitor_enters_alarm_at_its_line_and_leaves_it_only_past_clear() -> None:
    """drift: alarm at 0.25, clear at 0.10 (high is bad); accuracy: alarm at 0.80, clear at
    0.85 (low is bad)."""
    seen = []
    previous: dict[str, object] | None = None
    for drift_value, accuracy in [(0.2, 0.9), (0.3, 0.79), (0.2, 0.82), (0.12, 0.84),
                                  (None, None), (0.09, 0.86), (0.2, 0.81)]:
        states = _pass({"drift": drift_value, "accuracy": accuracy}, previous)
        seen.append((states["drift"]["alarm"], states["accuracy"]["alarm"],
                     states["drift"]["fired"]))
        previous = {"monitors": states}
    assert seen == [(False, False, False), (True, True, True), (True, True, False),
                    (True, True, False), (True, True, False), (False, False, False),
                    (False, False, False)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=30))
def test_hysteresis_never_flaps_between_its_lines(values: list[float]) -> None:
    """A value that stays strictly between clear and alarm never changes the state."""
    previous: dict[str, object] | None = None
    states = []
    for v in values:
        s = _pass({"drift": v}, previous)
        states.append((v, s["drift"]["alarm"]))
        previous = {"monitors": s}
    for (_, before), (v, after) in itertools.pairwise(states):
        if 0.10 < v < 0.25:
            assert after == before


def test_the_store_loop_toml_is_merged_over_the_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "loop.toml").write_text("[monitors.drift]\nalarm = 0.4\n")
    config = load_config(tmp_path)
    assert (config.monitors.drift.alarm, config.monitors.drift.clear) == (0.4, 0.1)
    assert config.monitors.accuracy == load_config().monitors.accuracy


@pytest.mark.parametrize(("text", "says"), [
    ("[monitors.drift]\nclear = 0.5\n", "clear"),
    ("[monitors.accuracy]\nclear = 0.5\n", "clear"),
    ("[monitors.drift]\ncolour = 1\n", "colour"),
    ("[schedule]\ninterval_s = -1\n", "interval_s"),
    ("[schedule\n", "not valid TOML"),
])
def test_a_bad_loop_toml_is_one_clear_error(tmp_path: Path, text: str, says: str) -> None:
    (tmp_path / "loop.toml").write_text(text)
    with pytest.raises(LoopConfigError, match=says):
        load_config(tmp_path)
