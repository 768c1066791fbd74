"""A transparent rule baseline: "parked" when one feature crosses a threshold.

>>> import numpy as np
>>> rule = ThresholdRule(0, 8.0).fit(np.zeros((0, 1)), np.zeros(0, bool))
>>> rule.predict_proba(np.array([[5.0], [9.0]]))[:, 1].tolist()
[0.0, 1.0]
"""

from __future__ import annotations

from typing import Self

import numpy as np


class ThresholdRule:
    """p(parked) = 1 where column ``column`` is at least ``threshold`` (NaN: 0)."""

    def __init__(self, column: int, threshold: float) -> None:
        self.column = column
        self.threshold = threshold

    def fit(self, X: np.ndarray, y: np.ndarray) -> Self:
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        hit = np.nan_to_num(X[:, self.column], nan=-np.inf) >= self.threshold
        return np.column_stack([~hit, hit]).astype(float)
