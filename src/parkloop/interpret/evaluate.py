"""Evaluation that cannot flatter: cross-validation grouped by person, pooled out of fold.

Nobody is in both the training and the test part of a fold (scikit-learn's
``StratifiedGroupKFold``); predictions of every fold are pooled, and precision, recall and F1
of the parked class, PR-AUC (average precision), the spread of F1 over folds and the share of
each stated mode called parked are reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, f1_score, precision_score, recall_score
from sklearn.model_selection import StratifiedGroupKFold

from parkloop.interpret.dataset import TrainingSet


@dataclass(frozen=True)
class CvReport:
    """Pooled out-of-fold figures of one learner."""

    name: str
    n: int
    positives: int
    precision: float
    recall: float
    f1: float
    pr_auc: float
    fold_f1: tuple[float, ...]
    called_parked_by_mode: dict[str, float]

    def row(self) -> str:
        spread = f"{min(self.fold_f1):.2f}-{max(self.fold_f1):.2f}" if self.fold_f1 else "-"
        return (f"| {self.name} | {self.n} | {self.precision:.3f} | {self.recall:.3f} | "
                f"{self.f1:.3f} | {self.pr_auc:.3f} | {spread} |")


Learner = Callable[[], Any]
"""Makes an unfitted estimator with ``fit(X, y)`` and ``predict_proba(X)``."""


def grouped_cv(data: TrainingSet, name: str, make: Learner, *, folds: int = 5,
               threshold: float = 0.5, seed: int = 0) -> CvReport:
    """Pooled out-of-fold scores of ``make()``, people held out."""
    p = np.zeros(len(data))
    fold_f1 = []
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    for train, test in splitter.split(data.X, data.y, data.groups):
        model = make()
        model.fit(data.X[train], data.y[train])
        p[test] = model.predict_proba(data.X[test])[:, 1]
        fold_f1.append(float(f1_score(data.y[test], p[test] >= threshold, zero_division=0)))
    called = p >= threshold
    by_mode = {str(m): float(called[data.modes == m].mean())
               for m in sorted(set(data.modes.tolist()))}
    return CvReport(name, len(data), int(data.y.sum()),
                    float(precision_score(data.y, called, zero_division=0)),
                    float(recall_score(data.y, called, zero_division=0)),
                    float(f1_score(data.y, called, zero_division=0)),
                    float(average_precision_score(data.y, p)), tuple(fold_f1), by_mode)
