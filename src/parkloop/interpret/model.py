"""The deployable model: a fitted estimator with the features it reads and its threshold.

A :class:`ParkedModel` is what the registry stores (``model.joblib``) and what serving keeps
in memory: scoring is one ``predict_proba`` over the leg ends' feature columns, with no
MLflow and no store access on the way.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pyarrow as pa
from threadpoolctl import ThreadpoolController

from parkloop.errors import ModelError
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.spec import Boosting, Learner, Logistic, Policy, Rule

MODEL_FILE = "model.joblib"
CALIBRATION_FOLDS = 3


_controller: tuple[int, ThreadpoolController] | None = None


def one_thread() -> Any:
    """A context in which native thread pools (OpenMP in gradient boosting) use one thread.

    parkloop's training sets are small (thousands of rows): threads buy nothing there, and
    on a busy machine OpenMP's spinning workers made one boosting fit of 150 rows take 6 s
    instead of 0.1 s. Train and score inside it. Finding the loaded thread pools takes 1-3
    ms (every shared library is inspected), so it is done again only after new modules were
    imported: the live pipeline scores many times a second."""
    global _controller
    if _controller is None or _controller[0] != len(sys.modules):
        _controller = len(sys.modules), ThreadpoolController()
    return _controller[1].limit(limits=1, user_api="openmp")


def _column(table: pa.Table, name: str, missing: float) -> np.ndarray:
    """A column as floats, NULL and an absent column as ``missing``."""
    if name not in table.column_names:
        return np.full(table.num_rows, missing)
    x = np.asarray(table.column(name).cast(pa.float64()).to_numpy(zero_copy_only=False),
                   float)
    return np.where(np.isnan(x), missing, x)


def signed_log(x: np.ndarray) -> np.ndarray:
    """sign(x) log(1 + |x|): tames metres and seconds spanning six orders of magnitude.

    >>> signed_log(np.array([-9.0, 0.0, 99.0])).round(3).tolist()
    [-2.303, 0.0, 4.605]
    """
    return np.asarray(np.sign(x) * np.log1p(np.abs(x)))


LEARNER_MODULES = ("sklearn.calibration", "sklearn.ensemble", "sklearn.impute",
                   "sklearn.linear_model", "sklearn.pipeline", "sklearn.preprocessing")
"""what a learned model's pickle imports (about a second): a server's pipeline workers import
them once, before they fork"""


def make_learner(learner: Learner, features: tuple[str, ...], calibration: str,
                 seed: int = 0) -> Any:
    """An unfitted estimator for a spec's learner over columns ``features``."""
    # scikit-learn takes seconds to import: only where a learner is made (a server serving a
    # rule model never needs it; unpickling a learned model imports what it needs)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    if isinstance(learner, Rule):
        if learner.feature not in features:
            raise ModelError(f"the rule reads {learner.feature!r}, which no labelled leg end has")
        return ThresholdRule(features.index(learner.feature), learner.threshold)
    est: Any
    if isinstance(learner, Logistic):
        est = make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            FunctionTransformer(signed_log), StandardScaler(),
            LogisticRegression(C=learner.C, max_iter=5000))
    elif isinstance(learner, Boosting):
        est = HistGradientBoostingClassifier(
            max_iter=learner.max_iter, learning_rate=learner.learning_rate,
            max_leaf_nodes=learner.max_leaf_nodes, min_samples_leaf=learner.min_samples_leaf,
            l2_regularization=learner.l2_regularization, random_state=seed)
    else:  # pragma: no cover - the spec's discriminator admits nothing else
        raise ModelError(f"unknown learner {learner!r}")
    if calibration == "none":
        return est
    return CalibratedClassifierCV(est, method=calibration, cv=CALIBRATION_FOLDS)


STRANGER = ("said_car_before", "said_other_before")
"""a leg end whose person has said nothing before it (both zero) is a stranger's"""
RIDE_ON = ("drives_on", "max_away_m")
"""the vehicle moved on within the wait, and how far the phone got from the halt"""

LINK_SEEN = "link_seen"
LINK_FEATURES = ("link_disconnect_near_end",)
"""car-link features: missing, not false, at the leg ends of a phone that had not sent a
single car-link event by the decision (``link_seen`` false): most phones never report the
link (GeoLife's none), and their silence says nothing about the car"""

POLICY_COLUMNS = (*STRANGER, *RIDE_ON, LINK_SEEN)
"""the leg-end columns the call policy (and :func:`feature_matrix`) read beside the model's
features"""


def feature_matrix(table: pa.Table, features: tuple[str, ...]) -> np.ndarray:
    """The model's input for the leg ends of ``table`` (rows) and ``features`` (columns), the
    one place training and scoring turn a table into numbers: booleans as 0/1, NULL as NaN,
    and :data:`LINK_FEATURES` NaN where ``link_seen`` is false (a table without ``link_seen``
    has its link features read as given)."""
    X = np.column_stack([_column(table, f, np.nan) for f in features]) if features else \
        np.zeros((table.num_rows, 0))
    link = [i for i, f in enumerate(features) if f in LINK_FEATURES]
    if link and LINK_SEEN in table.column_names:
        X[np.ix_(_column(table, LINK_SEEN, 0.0) == 0, link)] = np.nan
    return X

CALLS = ("parked", "below threshold", "stranger", "ride goes on")
"""why a leg end was called as it was (:meth:`ParkedModel.reasons`)"""


@dataclass(frozen=True)
class ParkedModel:
    """p(parked) for leg ends: ``estimator`` over ``features``, parked at ``threshold``, or
    at ``policy``'s higher threshold for strangers, and never where the ride went on."""

    estimator: Any
    features: tuple[str, ...]
    threshold: float
    learner: str
    spec: str
    """the spec's identity (name@hash)"""
    rules_version: str
    policy: Policy = field(default_factory=Policy)

    def reasons(self, table: pa.Table, p: np.ndarray) -> np.ndarray:
        """For each leg end of ``table`` with p(parked) ``p``, the index in :data:`CALLS` of
        why it is called as it is: 0 parked, else why not."""
        policy = getattr(self, "policy", Policy())  # models pickled before policies
        p = np.asarray(p)
        why = np.where(p >= self.threshold, 0, 1)
        stranger = self.stranger_threshold
        if stranger > self.threshold and len(why):
            unknown = sum(_column(table, c, 0.0) for c in STRANGER) == 0
            why = np.where((why == 0) & unknown & (p < stranger), 2, why)
        if policy.ride_on_away_m is not None and len(why):
            on = _column(table, RIDE_ON[0], 0.0) > 0
            near = _column(table, RIDE_ON[1], np.inf) <= policy.ride_on_away_m
            why = np.where((why == 0) & on & near, 3, why)
        return why

    def call(self, table: pa.Table, p: np.ndarray) -> np.ndarray:
        """Called parked or not, for each leg end of ``table`` with p(parked) ``p``."""
        return np.asarray(self.reasons(table, p) == 0)

    def predict(self, table: pa.Table) -> np.ndarray:
        """p(parked) for every row of a ``facts_leg_end`` table (or any table with the
        feature columns; missing values as NaN)."""
        if table.num_rows == 0:
            return np.zeros(0)
        reads = [*self.features, *([LINK_SEEN] if set(LINK_FEATURES) & set(self.features)
                                   else [])]
        missing = [f for f in reads if f not in table.column_names]
        if missing:
            raise ModelError(f"leg ends lack the model's features {missing}")
        X = feature_matrix(table, self.features)
        return np.asarray(self.estimator.predict_proba(X)[:, 1], float)

    @property
    def stranger_threshold(self) -> float:
        """p(parked) a stranger's leg end needs: the threshold's odds times the policy's
        ``stranger_odds``.

        >>> m = ParkedModel(None, (), 0.5, "rule", "s@0", "v1@0", Policy(stranger_odds=3.0))
        >>> m.stranger_threshold
        0.75
        """
        odds = self.threshold / (1 - self.threshold) if self.threshold < 1 else np.inf
        factor = getattr(self, "policy", Policy()).stranger_odds
        return float(odds * factor / (1 + odds * factor)) if np.isfinite(odds) else 1.0

    def describe_policy(self) -> str:
        """The call policy in words."""
        policy = getattr(self, "policy", Policy())
        words = [f"parked at p >= {self.threshold:.3f}"]
        stranger = self.stranger_threshold
        if stranger > self.threshold:
            words.append(f"p >= {stranger:.3f} for a person who has said nothing yet")
        if policy.ride_on_away_m is not None:
            words.append(f"never where the vehicle moved on with the phone within "
                         f"{policy.ride_on_away_m:.0f} m")
        return "; ".join(words)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / MODEL_FILE
        joblib.dump(self, path)
        return path

    @classmethod
    def load(cls, directory: Path) -> ParkedModel:
        path = directory / MODEL_FILE
        try:
            model = joblib.load(path)
        except (OSError, EOFError, ValueError, ModuleNotFoundError, AttributeError) as exc:
            raise ModelError(f"cannot load the model in {directory}: {exc}") from None
        if not isinstance(model, cls):
            raise ModelError(f"{path} does not hold a parkloop model")
        return model
