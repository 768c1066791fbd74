"""What a person said before: causal, never about the leg end itself, equal to a slow oracle."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from parkloop.facts.drives import DriveHistory
from parkloop.facts.geo import haversine_m
from parkloop.facts.said import ABOUT_MARGIN_MS, PRIOR, Statements, placed, said_features

MIN = 60_000


def drives(ends: list[tuple[int, float, float]]) -> DriveHistory:
    n = len(ends)
    t = np.array([e[0] for e in ends], np.int64)
    return DriveHistory(t - 20 * MIN, np.zeros(n), np.zeros(n), t,
                        np.array([e[1] for e in ends]), np.array([e[2] for e in ends]),
                        *(np.zeros(n) for _ in range(4)))


def one_leg(statements: Statements, history: DriveHistory, end_ms: int,
            lat: float = 40.0, lon: float = 116.3) -> dict[str, float]:
    out = said_features(np.array([end_ms - 30 * MIN]), np.array([lat]), np.array([lon]),
                        np.array([end_ms]), np.array([lat]), np.array([lon]),
                        np.array([end_ms + 10 * MIN]), statements, history)
    return {k: v[0].item() for k, v in out.items()}


def test_a_stranger_has_said_nothing() -> None:
    f = one_leg(Statements.none(), DriveHistory.empty(), 1000 * MIN)
    assert (f["said_car_before"], f["said_other_before"], f["said_car_share"]) == (0, 0, 0.5)
    assert all(math.isnan(f[k]) for k in ("said_car_near_m", "start_near_said_car_m",
                                          "since_said_car_s"))


def test_labels_are_placed_at_their_drive_and_counted_before_the_leg() -> None:
    history = drives([(100 * MIN, 40.0, 116.3), (300 * MIN, 40.01, 116.3)])
    # car at the first drive's end, bus at the second's; walking says nothing
    said = Statements.from_events(
        np.array([100 * MIN, 300 * MIN + MIN, 310 * MIN]),
        np.array([100 * MIN, 300 * MIN + MIN, 310 * MIN]),
        np.array(["car", "bus", "walk"], object), *(np.zeros(0),) * 5)
    f = one_leg(said, history, 1000 * MIN, lat=40.0, lon=116.3)
    assert (f["said_car_before"], f["said_other_before"]) == (1, 1)
    assert f["said_car_share"] == (1 + PRIOR) / (2 + 2 * PRIOR)
    assert f["said_car_near_m"] == 0.0
    assert round(f["said_other_near_m"]) == round(float(haversine_m(40.0, 116.3, 40.01, 116.3)))
    assert f["since_said_car_s"] == (1000 - 30 - 100) * 60


def test_never_the_statement_about_the_leg_end_itself_nor_one_said_after_the_decision() -> None:
    end = 1000 * MIN
    history = drives([(end, 40.0, 116.3)])
    about_it = Statements.from_events(np.array([end + MIN]), np.array([end + MIN]),
                                      np.array(["car"], object), *(np.zeros(0),) * 5)
    assert one_leg(about_it, history, end)["said_car_before"] == 0
    # feedback about an earlier parking, said only after this leg end's decision
    late = Statements.from_events(*(np.zeros(0),) * 3, np.array([end + 11 * MIN]),
                                  np.array([end - 60 * MIN]), np.array([40.0]),
                                  np.array([116.3]), np.array([True]))
    assert one_leg(late, history, end)["said_car_before"] == 0
    early = Statements.from_events(*(np.zeros(0),) * 3, np.array([end + 9 * MIN]),
                                   np.array([end - 60 * MIN]), np.array([40.0]),
                                   np.array([116.3]), np.array([True]))
    assert one_leg(early, history, end)["said_car_before"] == 1


@given(st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 60), st.booleans(),
                          st.floats(39.9, 40.1), st.booleans()), max_size=12),
       st.lists(st.tuples(st.integers(0, 2000), st.floats(39.9, 40.1)), max_size=6),
       st.lists(st.integers(0, 2100), min_size=1, max_size=5))
def test_equal_to_a_slow_oracle(said: list[tuple[int, int, bool, float, bool]],
                                ends: list[tuple[int, float]], legs: list[int]) -> None:
    statements = Statements.of(
        np.array([(a + d) * MIN for a, d, *_ in said], np.int64),
        np.array([a * MIN for a, *_ in said], np.int64), np.array([c for _, _, c, *_ in said]),
        np.array([lat if own else np.nan for *_, lat, own in said]),
        np.array([116.3 if own else np.nan for *_, own in said]))
    history = drives(sorted((t * MIN, lat, 116.3) for t, lat in ends))
    got = said_features(
        np.array(legs, np.int64) * MIN - 30 * MIN, np.full(len(legs), 40.0),
        np.full(len(legs), 116.3), np.array(legs, np.int64) * MIN, np.full(len(legs), 40.05),
        np.full(len(legs), 116.3), np.array(legs, np.int64) * MIN + 10 * MIN, statements,
        history)
    lat, lon = placed(statements, history)
    for k, end in enumerate(np.array(legs, np.int64) * MIN):
        counts = [j for j in range(len(statements))
                  if statements.said_ms[j] < end + 10 * MIN
                  and statements.about_ms[j] < end - ABOUT_MARGIN_MS]
        cars = [j for j in counts if statements.car[j]]
        assert got["said_car_before"][k] == len(cars)
        assert got["said_other_before"][k] == len(counts) - len(cars)
        near = [float(haversine_m(40.05, 116.3, lat[j], lon[j])) for j in cars
                if not math.isnan(lat[j])]
        want = min(near) if near else math.nan
        assert (got["said_car_near_m"][k] == want) or (math.isnan(want) and math.isnan(
            got["said_car_near_m"][k]))
        if cars:
            assert got["since_said_car_s"][k] == (end - 30 * MIN - statements.about_ms[
                max(cars)]) / 1000
