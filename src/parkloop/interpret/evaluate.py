"""Evaluation that cannot flatter: cross-validation grouped by person, pooled out of fold.

Nobody is in both the training and the test part of a fold (scikit-learn's
``StratifiedGroupKFold`` on the device of each row). Every row is predicted once, by the model
that did not see its person, and the figures are computed on those pooled out-of-fold scores:
precision, recall and F1 of the parked class, PR-AUC (average precision), their spread over
folds, the share of each stated mode called parked and the confusions that matter (a car end
missed; a taxi or bus end called parked).

>>> y = np.array([True, True, False, False])
>>> m = metrics(y, np.array([0.9, 0.4, 0.6, 0.1]), 0.5)
>>> (m.precision, m.recall, m.f1)
(0.5, 0.5, 0.5)
>>> best_threshold(y, np.array([0.9, 0.4, 0.3, 0.1]))
0.35
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve
from sklearn.model_selection import StratifiedGroupKFold

from parkloop.interpret.dataset import TrainingSet

Learner = Callable[[], Any]
"""Makes an unfitted estimator with ``fit(X, y)`` and ``predict_proba(X)``."""

PARKED_MODE = "car"
"""the stated mode whose leg ends are parkings; every other stated mode is a negative"""
FIRST_CONFUSIONS = ("taxi", "bus")
"""non-car modes reported first: the vehicles most easily taken for one's own car"""
IMPORTANCE_REPEATS = 5
"""permutations per feature and fold for permutation importance"""


@dataclass(frozen=True, eq=False)
class Scores:
    """The pooled out-of-fold predictions of one learner: ``p`` (p(parked)) and ``fold`` (the
    fold in which it was held out) per row of the training set, the decision ``threshold``
    (called parked: ``p >= threshold``) and permutation ``importance`` per feature (drop in
    average precision; may be empty). Choose another threshold with
    ``dataclasses.replace(scores, threshold=t)``."""

    name: str
    p: np.ndarray
    threshold: float
    fold: np.ndarray
    importance: dict[str, float]
    p_unsaid: np.ndarray | None = None
    """out-of-fold p(parked) of the same rows as strangers' (nothing said), where known"""
    models: tuple[Any, ...] = ()
    """the fitted model of each fold (fold k's at k), where kept: the end-to-end evaluation
    scores the held-out people with them rather than fitting them again"""


class Confusion(NamedTuple):
    """``n`` of the ``total`` leg ends stated as ``mode`` were called ``called``."""

    mode: str
    called: str
    n: int
    total: int

    @property
    def share(self) -> float:
        return self.n / self.total if self.total else float("nan")


@dataclass(frozen=True)
class Metrics:
    """Figures of the parked class at one threshold. Undefined figures (no positives, nothing
    called parked, a fold with a class missing) are NaN, never a flattering 0 or 1."""

    threshold: float
    n: int
    positives: int
    precision: float
    recall: float
    f1: float
    pr_auc: float
    fold_f1: tuple[float, ...]
    fold_pr_auc: tuple[float, ...]
    called_parked_by_mode: dict[str, tuple[int, int]]
    """stated mode -> (called parked, total)"""
    confusions: tuple[Confusion, ...]
    """car called not parked (misses), then each other stated mode called parked: taxi, bus
    first, the rest by name"""


def _both_classes(y: np.ndarray) -> bool:
    return bool(y.any() and not y.all())


def _pr_auc(y: np.ndarray, p: np.ndarray) -> float:
    return float(average_precision_score(y, p)) if _both_classes(y) else float("nan")


def _ratio(a: int, b: int) -> float:
    return a / b if b else float("nan")


def metrics(y: np.ndarray, p: np.ndarray, threshold: float, fold: np.ndarray | None = None,
            modes: np.ndarray | None = None) -> Metrics:
    """Precision, recall, F1 (called parked: ``p >= threshold``) and PR-AUC of the parked class;
    per fold of ``fold`` if given, per stated mode of ``modes`` if given."""
    y = np.asarray(y, dtype=bool)
    p = np.asarray(p, dtype=float)
    called = p >= threshold
    tp = int(np.sum(called & y))
    fp = int(np.sum(called & ~y))
    fn = int(np.sum(~called & y))
    fold_f1: list[float] = []
    fold_auc: list[float] = []
    for k in np.unique(fold) if fold is not None else ():
        mask = fold == k
        whole = _both_classes(y[mask])
        sub = metrics(y[mask], p[mask], threshold) if whole else None
        fold_f1.append(sub.f1 if sub else float("nan"))
        fold_auc.append(sub.pr_auc if sub else float("nan"))
    by_mode: dict[str, tuple[int, int]] = {}
    confusions: list[Confusion] = []
    if modes is not None:
        names, inverse = np.unique(modes.astype(str), return_inverse=True)
        hits = np.bincount(inverse, weights=called, minlength=len(names)).astype(int)
        totals = np.bincount(inverse, minlength=len(names))
        by_mode = {str(m): (int(h), int(t)) for m, h, t in zip(names, hits, totals, strict=True)}
        if PARKED_MODE in by_mode:
            hit, total = by_mode[PARKED_MODE]
            confusions.append(Confusion(PARKED_MODE, "not parked", total - hit, total))
        others = ([m for m in FIRST_CONFUSIONS if m in by_mode]
                  + sorted(set(by_mode) - {PARKED_MODE, "feedback", *FIRST_CONFUSIONS}))
        confusions += [Confusion(m, "parked", *by_mode[m]) for m in others]
    return Metrics(float(threshold), len(y), int(y.sum()), _ratio(tp, tp + fp),
                   _ratio(tp, tp + fn), _ratio(2 * tp, 2 * tp + fp + fn), _pr_auc(y, p),
                   tuple(fold_f1), tuple(fold_auc), by_mode, tuple(confusions))


def pooled(data: TrainingSet, scores: Scores) -> Metrics:
    """The pooled out-of-fold metrics of ``scores`` on ``data``, per fold and per mode."""
    return metrics(data.y, scores.p, scores.threshold, scores.fold, data.modes)


def per_group(data: TrainingSet, scores: Scores) -> list[tuple[str, Metrics]]:
    """The metrics of each person (group) on their own leg ends, sorted by group."""
    out = []
    for group in sorted(set(data.groups.tolist())):
        rows = data.groups == group
        out.append((str(group), metrics(data.y[rows], scores.p[rows], scores.threshold,
                                        modes=data.modes[rows])))
    return out


def fold_numbers(data: TrainingSet, folds: int = 5, seed: int = 0) -> np.ndarray:
    """The fold (0..k-1) in which each row is held out: every person in exactly one fold,
    each fold's share of parked ends as even as the people allow. With fewer people than
    ``folds``, one fold per person (at least two people are needed)."""
    n_groups = len(set(data.groups.tolist()))
    if n_groups < 2:
        raise ValueError(f"grouped cross-validation needs at least 2 people, got {n_groups}")
    splitter = StratifiedGroupKFold(n_splits=min(folds, n_groups), shuffle=True,
                                    random_state=seed)
    fold = np.full(len(data), -1)
    with warnings.catch_warnings():  # few car ends in a small store: said by the report
        warnings.filterwarnings("ignore", message="The least populated class")
        for k, (_, test) in enumerate(splitter.split(data.X, data.y, data.groups)):
            fold[test] = k
    return fold


def cross_validate(data: TrainingSet, name: str, make: Learner, *, folds: int = 5,
                   seed: int = 0, threshold: float = 0.5, importance: bool = True,
                   train_rows: np.ndarray | None = None) -> Scores:
    """Out-of-fold p(parked) of ``make()`` for every row, people held out (see
    :func:`fold_numbers`). With ``importance``, the permutation importance of each feature
    (mean drop in average precision when it is shuffled in the held-out fold, averaged over
    the folds that hold both classes; Breiman 2001, "Random forests"). ``train_rows`` (a
    mask) limits what is trained on, e.g. without outliers; every row is still predicted."""
    fold = fold_numbers(data, folds, seed)
    usable = np.ones(len(data), bool) if train_rows is None else np.asarray(train_rows, bool)
    p = np.zeros(len(data))
    p_unsaid = None if data.X_unsaid is None else np.zeros(len(data))
    drops: list[np.ndarray] = []
    models = []
    for k in range(int(fold.max()) + 1):
        test = fold == k
        model = make().fit(*data.fit_data(~test & usable))
        models.append(model)
        p[test] = model.predict_proba(data.X[test])[:, 1]
        if p_unsaid is not None and data.X_unsaid is not None:
            p_unsaid[test] = model.predict_proba(data.X_unsaid[test])[:, 1]
        if importance and _both_classes(data.y[test]):
            drops.append(permutation_drops(model, data.X[test], data.y[test], seed=seed))
    mean = np.mean(drops, axis=0) if drops else np.zeros(0)
    p.setflags(write=False)
    fold.setflags(write=False)
    return Scores(name, p, float(threshold), fold,
                  {f: float(v) for f, v in zip(data.features, mean, strict=False)}, p_unsaid,
                  tuple(models))


def permutation_drops(model: Any, X: np.ndarray, y: np.ndarray, *,
                      repeats: int = IMPORTANCE_REPEATS, seed: int = 0) -> np.ndarray:
    """Permutation importance (Breiman 2001): for each feature, the mean drop in average
    precision over ``repeats`` shuffles of its column.

    What :func:`sklearn.inspection.permutation_importance` computes, with the shuffled copies
    of many features scored in one ``predict_proba`` call (up to :data:`_ROWS_PER_CALL` rows)
    and average precision computed here (:func:`average_precision`): on parkloop's small
    folds the fixed cost of each sklearn call was most of the time."""
    rng = np.random.default_rng(seed)
    n, k = X.shape
    y = np.asarray(y, bool)
    base = average_precision(y, model.predict_proba(X)[:, 1])
    drops = np.zeros(k)
    step = max(1, _ROWS_PER_CALL // max(1, repeats * n))
    for first in range(0, k, step):
        features = range(first, min(k, first + step))
        shuffled = np.tile(X, (len(features) * repeats, 1))
        for i, j in enumerate(features):
            for r in range(repeats):
                at = (i * repeats + r) * n
                shuffled[at:at + n, j] = X[rng.permutation(n), j]
        p = model.predict_proba(shuffled)[:, 1].reshape(len(features), repeats, n)
        for i, j in enumerate(features):
            drops[j] = base - np.mean([average_precision(y, row) for row in p[i]])
    return drops


_ROWS_PER_CALL = 200_000


def average_precision(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision of scores ``p`` for labels ``y`` (bool), as
    :func:`sklearn.metrics.average_precision_score` defines it (tied scores form one step),
    without its input checks: NaN where ``y`` holds no positive.

    >>> average_precision(np.array([True, False, True, False]), np.array([.9, .8, .8, .1]))
    0.8333333333333333
    """
    order = np.argsort(-p, kind="stable")
    hits = np.cumsum(y[order])
    if not len(hits) or hits[-1] == 0:
        return float("nan")
    ends = np.r_[np.flatnonzero(np.diff(p[order])), len(p) - 1]  # last row of each score
    tp = hits[ends]
    precision = tp / (ends + 1)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The threshold that maximises F1 of the parked class on ``(y, p)``: halfway between the
    lowest score it calls parked and the next lower score (ties: the highest threshold).

    Choose it on pooled out-of-fold scores. F1 reported at a threshold chosen on the same
    scores is slightly optimistic; :func:`nested_threshold_f1` gives the honest figure."""
    y = np.asarray(y, dtype=bool)
    if not _both_classes(y):
        raise ValueError("a threshold can only be chosen where both parked and not parked occur")
    precision, recall, thresholds = precision_recall_curve(y, p)
    denom = precision[:-1] + recall[:-1]
    f1 = np.divide(2 * precision[:-1] * recall[:-1], denom, out=np.zeros_like(denom),
                   where=denom > 0)
    best = int(np.flatnonzero(f1 == f1.max())[-1])
    lower = thresholds[best - 1] if best > 0 else thresholds[best]
    return float((thresholds[best] + lower) / 2)


def nested_threshold_f1(data: TrainingSet, scores: Scores) -> float:
    """Pooled F1 where each fold is called at the threshold best on the *other* folds'
    out-of-fold scores: no row helps choose its own threshold (where the other folds lack a
    class, ``scores.threshold`` is used)."""
    called = np.zeros(len(data), bool)
    for k in np.unique(scores.fold):
        test = scores.fold == k
        rest_y = data.y[~test]
        t = (best_threshold(rest_y, scores.p[~test]) if _both_classes(rest_y)
             else scores.threshold)
        called[test] = scores.p[test] >= t
    tp = int(np.sum(called & data.y))
    return _ratio(2 * tp, int(called.sum()) + int(data.y.sum()))
