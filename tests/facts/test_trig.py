"""facts/trig.py against the platform's libm (the slow, obvious reference): within its stated
accuracy on random inputs, the special cases exactly, and the ufuncs equal to the scalars."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from parkloop.facts import trig

ANGLES = st.floats(-2 ** 19 * math.pi, 2 ** 19 * math.pi)
UNIT = st.floats(-1.0, 1.0)
FINITE = st.floats(-1e300, 1e300)


def ulps(got: float, want: float) -> float:
    return abs(got - want) / math.ulp(max(abs(want), 2.0 ** -1022))


@given(st.one_of(ANGLES, st.floats(-10.0, 10.0)))
def test_sin_cos_within_an_ulp(x: float) -> None:
    assert ulps(trig.sin(x), math.sin(x)) <= 1.0
    assert ulps(trig.cos(x), math.cos(x)) <= 1.0


@given(UNIT)
def test_asin_acos_within_a_few_ulps(x: float) -> None:
    assert ulps(trig.asin(x), math.asin(x)) <= 3.0
    assert ulps(trig.acos(x), math.acos(x)) <= 3.0


@given(FINITE, FINITE)
def test_atan2_within_an_ulp(y: float, x: float) -> None:
    assert ulps(trig.atan2(y, x), math.atan2(y, x)) <= 1.0


@pytest.mark.parametrize(("y", "x"), [(0.0, 0.0), (-0.0, 0.0), (0.0, -0.0), (-0.0, -0.0),
                                      (0.0, -2.0), (-0.0, -2.0), (3.0, 0.0), (-3.0, -0.0),
                                      (1e-300, 1e300), (1e300, -1e-300), (-1e-300, -1e300)])
def test_atan2_special_cases_are_libms(y: float, x: float) -> None:
    got, want = trig.atan2(y, x), math.atan2(y, x)
    assert (got, math.copysign(1.0, got)) == (want, math.copysign(1.0, want))


def test_outside_the_domain_is_nan() -> None:
    assert math.isnan(trig.sin(1e7))
    assert math.isnan(trig.cos(math.inf))
    assert math.isnan(trig.atan2(math.nan, 1.0))


def test_ufuncs_are_the_scalars() -> None:
    x = np.random.default_rng(0).uniform(-4.0, 4.0, 1000)
    u = np.clip(x / 4.0, -1.0, 1.0)
    for vec, scalar, arg in ((trig.sin_v, trig.sin, x), (trig.cos_v, trig.cos, x),
                             (trig.asin_v, trig.asin, u), (trig.acos_v, trig.acos, u)):
        assert vec(arg).tolist() == [scalar(float(v)) for v in arg]
    assert trig.atan2_v(x, x[::-1]).tolist() == [trig.atan2(float(a), float(b))
                                                 for a, b in zip(x, x[::-1], strict=True)]
