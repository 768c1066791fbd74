"""Great-circle distances in metres between WGS 84 points given in degrees.

Two formulas on a sphere of radius :data:`EARTH_RADIUS_M`:

- :func:`haversine_m`, the numerically robust one;
- :func:`cosine_law_m`, the spherical law of cosines with the operations and order of
  trackintel 1.4.2's "haversine" distance (``trackintel.geogr.point_haversine_dist``), so that
  rules reproducing trackintel's staypoints compare distances with its threshold. Its acos
  argument is clipped to [-1, 1].

The trigonometry is :mod:`parkloop.facts.trig`'s, not libm's or NumPy's, so distances are the
same bits on every machine (trackintel's own last digits follow its platform's libm).

Both accept scalars or NumPy arrays (broadcast). The ``_haversine_m`` / ``_cosine_law_m``
scalar versions are compiled with Numba for use inside kernels; they compute the same
expressions in the same order.

>>> round(float(haversine_m(40.0, 116.3, 40.0009, 116.3)), 3)   # 0.0009 deg of latitude
100.075
>>> round(float(cosine_law_m(47.3, 8.5, 47.2, 8.7)), 6)        # trackintel's doctest value
18749.056278
>>> cosine_law_m(np.array([40.0, 40.0]), 116.3, 40.0, np.array([116.3, 116.301])).round(2)
array([ 0.  , 85.18])
"""

from __future__ import annotations

import math

import numba
import numpy as np
import numpy.typing as npt

from parkloop.facts import trig

EARTH_RADIUS_M = 6_371_000.0
"""Mean Earth radius, metres (the value trackintel and most mobility libraries use)."""

_DEG = math.pi / 180.0

ArrayLike = float | npt.NDArray[np.float64]


def haversine_m(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike,
                lon2: ArrayLike) -> npt.NDArray[np.float64]:
    """Haversine distance, metres, between (lat1, lon1) and (lat2, lon2) in degrees."""
    p1 = np.multiply(lat1, _DEG)
    p2 = np.multiply(lat2, _DEG)
    dp = p2 - p1
    dl = np.multiply(np.subtract(lon2, lon1), _DEG)
    a = trig.sin_v(dp / 2.0) ** 2 + trig.cos_v(p1) * trig.cos_v(p2) * trig.sin_v(dl / 2.0) ** 2
    return np.asarray(2.0 * EARTH_RADIUS_M * trig.asin_v(np.sqrt(np.clip(a, 0.0, 1.0))))


def cosine_law_m(lat1: ArrayLike, lon1: ArrayLike, lat2: ArrayLike,
                 lon2: ArrayLike) -> npt.NDArray[np.float64]:
    """Spherical law of cosines, metres: ``R·acos(cos Δφ - cos φ1·cos φ2·(1 - cos Δλ))``.

    Computed as trackintel 1.4.2 does (same operations, same order), degrees in.
    """
    p1 = np.multiply(lat1, _DEG)
    p2 = np.multiply(lat2, _DEG)
    l1 = np.multiply(lon1, _DEG)
    l2 = np.multiply(lon2, _DEG)
    c = trig.cos_v(p1 - p2) - trig.cos_v(p1) * trig.cos_v(p2) * (1.0 - trig.cos_v(l1 - l2))
    return np.asarray(EARTH_RADIUS_M * trig.acos_v(np.clip(c, -1.0, 1.0)))


@numba.njit(cache=True, nogil=True)
def _haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    s1 = trig.sin((p2 - p1) / 2.0)
    s2 = trig.sin((lon2 - lon1) * _DEG / 2.0)
    a = s1 * s1 + trig.cos(p1) * trig.cos(p2) * s2 * s2
    a = min(max(a, 0.0), 1.0)
    return 2.0 * EARTH_RADIUS_M * trig.asin(math.sqrt(a))


@numba.njit(cache=True, nogil=True)
def _cosine_law_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    p1 = lat1 * _DEG
    p2 = lat2 * _DEG
    c = (trig.cos(p1 - p2)
         - trig.cos(p1) * trig.cos(p2) * (1.0 - trig.cos(lon1 * _DEG - lon2 * _DEG)))
    c = min(max(c, -1.0), 1.0)
    return EARTH_RADIUS_M * trig.acos(c)
