"""A person's whole true track: the knots of all legs and stays, one after the other.

>>> from parkloop.simulate.movement import Leg, Stay
>>> segs = [Stay(0.0, 10.0, np.zeros(2), True),
...         Leg("walk", np.array([10.0, 20.0]), np.array([0.0, 15.0]), np.zeros(2),
...             np.zeros((0, 2)))]
>>> tr = Track.of(segs)
>>> tr.at(np.array([5.0, 15.0]))[0].tolist(), tr.velocity(np.array([5.0, 15.0]))[0].tolist()
([0.0, 7.5], [0.0, 1.5])
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parkloop.simulate.movement import Leg, Segment


@dataclass(frozen=True)
class Track:
    """Knot times (s, non-decreasing) and positions (m); straight lines between knots."""

    t_s: np.ndarray
    x_m: np.ndarray
    y_m: np.ndarray

    @classmethod
    def of(cls, segments: list[Segment]) -> Track:
        ts, xs, ys = [], [], []
        for seg in segments:
            if isinstance(seg, Leg):
                ts.append(seg.t_s)
                xs.append(seg.x_m)
                ys.append(seg.y_m)
            else:
                ts.append(np.array([seg.t0_s, seg.t1_s]))
                xs.append(np.full(2, seg.xy[0]))
                ys.append(np.full(2, seg.xy[1]))
        return cls(np.concatenate(ts), np.concatenate(xs), np.concatenate(ys))

    def at(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True positions (m) at times ``t_s``."""
        return np.interp(t_s, self.t_s, self.x_m), np.interp(t_s, self.t_s, self.y_m)

    def velocity(self, t_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """True velocity east and north (m/s) at times ``t_s``."""
        i = np.clip(np.searchsorted(self.t_s, t_s, side="right") - 1, 0, len(self.t_s) - 2)
        dt = self.t_s[i + 1] - self.t_s[i]
        ok = dt > 0
        safe = np.where(ok, dt, 1.0)
        vx = np.where(ok, (self.x_m[i + 1] - self.x_m[i]) / safe, 0.0)
        vy = np.where(ok, (self.y_m[i + 1] - self.y_m[i]) / safe, 0.0)
        return vx, vy
