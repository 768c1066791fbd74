"""Trigonometry that gives the same bits on every machine: sin, cos, atan, atan2, asin, acos.

Facts must be identical wherever they are built (docs/facts.md, "Same facts on every
machine"). IEEE 754 makes ``+ - * /`` and ``sqrt`` correctly rounded, so they give the same
bits everywhere; the transcendental functions do not. glibc's ``sin`` or ``atan`` pick an FMA
variant on CPUs that have FMA, NumPy dispatches ``arcsin``, ``arctan2`` and others to SIMD
(SVML on AVX-512) code, and either may change between releases — each within an ulp or
two, which is enough to move a digest or, near a threshold, a decision.

So the facts compute them here, from basic operations only: the polynomials and argument
reduction of FreeBSD's msun (fdlibm's descendant, ``k_sin.c``, ``k_cos.c``,
``e_rem_pio2.c``'s medium path, ``s_atan.c``, ``e_atan2.c``), with exponent tests done by
comparison or ``frexp`` instead of bit access. Compiled by Numba without ``fastmath``, so
LLVM never contracts ``a*b + c`` into an FMA, and elementwise loops it vectorises compute the
same operations per lane. Accuracy is that of fdlibm (under one ulp; asin and acos, derived
from atan2, within a few).

``sin`` and ``cos`` reduce arguments up to ``2**19 * pi`` in magnitude (angles in radians of
any latitude or longitude, with room to spare) and return NaN beyond that and for non-finite
input; ``atan2`` and ``atan`` take finite input (NaN gives NaN).

The ``*_v`` versions are NumPy ufuncs of the same code (they broadcast).

>>> float(sin(0.5)) == 0.479425538604203, float(cos(0.5)) == 0.8775825618903728
(True, True)
>>> float(atan2(1.0, 1.0)) == 0.7853981633974483, float(acos(-1.0)) == 3.141592653589793
(True, True)
>>> [round(float(v), 12) for v in asin_v(np.array([0.0, 0.5, 1.0]))]
[0.0, 0.523598775598, 1.570796326795]
"""

from __future__ import annotations

import math
from typing import Any

import numba
import numpy as np

__all__ = ["acos", "acos_v", "asin", "asin_v", "atan", "atan2", "atan2_v", "cos", "cos_v",
           "sin", "sin_v"]

# k_sin.c
_S1, _S2, _S3 = -1.66666666666666324348e-01, 8.33333333332248946124e-03, -1.98412698298579493134e-04
_S4, _S5, _S6 = 2.75573137070700676789e-06, -2.50507602534068634195e-08, 1.58969099521155010221e-10
# k_cos.c
_C1, _C2, _C3 = 4.16666666666666019037e-02, -1.38888888888741095749e-03, 2.48015872894767294178e-05
_C4, _C5, _C6 = -2.75573143513906633035e-07, 2.08757232129817482790e-09, -1.13596475577881948265e-11
# e_rem_pio2.c
_INVPIO2 = 6.36619772367581382433e-01
_PIO2_1, _PIO2_1T = 1.57079632673412561417e+00, 6.07710050650619224932e-11
_PIO2_2, _PIO2_2T = 6.07710050630396597660e-11, 2.02226624879595063154e-21
_PIO2_3, _PIO2_3T = 2.02226624871116645580e-21, 8.47842766036889956997e-32
_ROUNDER = 6755399441055744.0  # 0x1.8p52: x + it - it rounds x to an integer, ties to even
_PIO4 = 0.7853981633974483
_MAX_REDUCE = 2.0 ** 19 * math.pi
# s_atan.c
_ATANHI = (4.63647609000806093515e-01, 7.85398163397448278999e-01,
           9.82793723247329054082e-01, 1.57079632679489655800e+00)
_ATANLO = (2.26987774529616870924e-17, 3.06161699786838301793e-17,
           1.39033110312309984516e-17, 6.12323399573676603587e-17)
_AT0, _AT1 = 3.33333333333329318027e-01, -1.99999999998764832476e-01
_AT2, _AT3 = 1.42857142725034663711e-01, -1.11111104054623557880e-01
_AT4, _AT5 = 9.09088713343650656196e-02, -7.69187620504482999495e-02
_AT6, _AT7 = 6.66107313738753120669e-02, -5.83357013379057348645e-02
_AT8, _AT9 = 4.97687799461593236017e-02, -3.65315727442169155270e-02
_AT10 = 1.62858201153657823623e-02
# e_atan2.c
_PI, _PI_LO = 3.1415926535897931160e+00, 1.2246467991473531772e-16
_PI_O_2 = 1.5707963267948965580e+00

_jit = numba.njit(cache=True, nogil=True)


@_jit
def _ksin(x: float, y: float, tail: bool) -> float:
    z = x * x
    v = z * x
    r = _S2 + z * (_S3 + z * (_S4 + z * (_S5 + z * _S6)))
    if not tail:
        return x + v * (_S1 + z * r)
    return x - ((z * (0.5 * y - v * r) - y) - v * _S1)


@_jit
def _kcos(x: float, y: float) -> float:
    z = x * x
    w = z * z
    r = z * (_C1 + z * (_C2 + z * _C3)) + w * w * (_C4 + z * (_C5 + z * _C6))
    hz = 0.5 * z
    w = 1.0 - hz
    return w + (((1.0 - w) - hz) + (z * r - x * y))


@_jit
def _reduce(x: float) -> tuple[int, float, float]:
    """x = n·π/2 + (y0 + y1), |y0 + y1| <= π/4 (msun's medium path, every refinement taken)."""
    fn = (x * _INVPIO2 + _ROUNDER) - _ROUNDER
    r = x - fn * _PIO2_1
    w = fn * _PIO2_1T
    t = r
    w = fn * _PIO2_2
    r = t - w
    w = fn * _PIO2_2T - ((t - r) - w)
    t = r
    w = fn * _PIO2_3
    r = t - w
    w = fn * _PIO2_3T - ((t - r) - w)
    y0 = r - w
    return int(fn), y0, (r - y0) - w


@_jit
def sin(x: float) -> float:
    """sin of x radians."""
    if not abs(x) <= _MAX_REDUCE:
        return math.nan
    if abs(x) <= _PIO4:
        return _ksin(x, 0.0, False)
    n, y0, y1 = _reduce(x)
    q = n & 3
    if q == 0:
        return _ksin(y0, y1, True)
    if q == 1:
        return _kcos(y0, y1)
    if q == 2:
        return -_ksin(y0, y1, True)
    return -_kcos(y0, y1)


@_jit
def cos(x: float) -> float:
    """cos of x radians."""
    if not abs(x) <= _MAX_REDUCE:
        return math.nan
    if abs(x) <= _PIO4:
        return _kcos(x, 0.0)
    n, y0, y1 = _reduce(x)
    q = n & 3
    if q == 0:
        return _kcos(y0, y1)
    if q == 1:
        return -_ksin(y0, y1, True)
    if q == 2:
        return -_kcos(y0, y1)
    return _ksin(y0, y1, True)


@_jit
def atan(x: float) -> float:
    """atan, radians."""
    if x != x:
        return x
    a = abs(x)
    if a >= 2.0 ** 66:
        z = _ATANHI[3] + _ATANLO[3]
        return z if x > 0 else -z
    k = -1
    if a < 0.4375:
        if a < 2.0 ** -27:
            return x
        y = x
    elif a < 1.1875:
        if a < 0.6875:
            k, y = 0, (2.0 * a - 1.0) / (2.0 + a)
        else:
            k, y = 1, (a - 1.0) / (a + 1.0)
    elif a < 2.4375:
        k, y = 2, (a - 1.5) / (1.0 + 1.5 * a)
    else:
        k, y = 3, -1.0 / a
    z = y * y
    w = z * z
    s1 = z * (_AT0 + w * (_AT2 + w * (_AT4 + w * (_AT6 + w * (_AT8 + w * _AT10)))))
    s2 = w * (_AT1 + w * (_AT3 + w * (_AT5 + w * (_AT7 + w * _AT9))))
    if k < 0:
        return y - y * (s1 + s2)
    z = _ATANHI[k] - ((y * (s1 + s2) - _ATANLO[k]) - y)
    return -z if x < 0 else z


@_jit
def atan2(y: float, x: float) -> float:
    """The angle of (x, y) from the x axis, radians in [-π, π]."""
    if x != x or y != y:
        return x + y
    if x == 1.0:
        return atan(y)
    neg_x = x < 0.0 or (x == 0.0 and math.copysign(1.0, x) < 0.0)
    if y == 0.0:
        return math.copysign(_PI, y) if neg_x else y
    if x == 0.0:
        return _PI_O_2 if y > 0.0 else -_PI_O_2
    k = math.frexp(y)[1] - math.frexp(x)[1]
    m = (1 if y < 0.0 else 0) + (2 if neg_x else 0)
    if k > 60:
        z = _PI_O_2 + 0.5 * _PI_LO
        m &= 1
    elif neg_x and k < -60:
        z = 0.0
    else:
        z = atan(abs(y / x))
    if m == 0:
        return z
    if m == 1:
        return -z
    if m == 2:
        return _PI - (z - _PI_LO)
    return (z - _PI_LO) - _PI


@_jit
def asin(x: float) -> float:
    """asin of x in [-1, 1], radians (as atan2(x, √((1-x)(1+x))))."""
    return atan2(x, math.sqrt((1.0 - x) * (1.0 + x)))


@_jit
def acos(x: float) -> float:
    """acos of x in [-1, 1], radians (as 2·atan2(√(1-x), √(1+x)))."""
    return 2.0 * atan2(math.sqrt(1.0 - x), math.sqrt(1.0 + x))


def _ufunc(f: Any, nargs: int) -> np.ufunc:
    sig = "float64(" + ", ".join(["float64"] * nargs) + ")"
    return numba.vectorize([sig], cache=True)(f.py_func)  # type: ignore[no-untyped-call,no-any-return]


sin_v = _ufunc(sin, 1)
cos_v = _ufunc(cos, 1)
asin_v = _ufunc(asin, 1)
acos_v = _ufunc(acos, 1)
atan2_v = _ufunc(atan2, 2)
