"""Training sets: the features of labelled leg ends, with the person each belongs to."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa

from parkloop.facts.features import FEATURES
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.model import feature_matrix

if TYPE_CHECKING:
    from parkloop.store import Store


@dataclass(frozen=True)
class TrainingSet:
    """Feature matrix ``X`` (rows: labelled leg ends; columns: ``features``), target ``y``
    (parked), the device of each row (``groups``: nobody may be in train and test) and the
    stated mode of each row."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    modes: np.ndarray
    features: tuple[str, ...]
    sources: np.ndarray | None = None
    """where each row's label came from: ``label`` (a label's end), ``inside`` (inside a
    non-car label's span) or ``feedback``"""
    X_unsaid: np.ndarray | None = None
    """the same rows as a stranger's would be (built with nothing the person said): trained
    on beside ``X`` so that the model knows both, never scored"""

    def __len__(self) -> int:
        return len(self.y)

    def fit_data(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """What a model is fitted on for the rows ``rows`` (a mask): their features, and
        again as a stranger's where ``X_unsaid`` is known."""
        if self.X_unsaid is None:
            return self.X[rows], self.y[rows]
        return (np.vstack([self.X[rows], self.X_unsaid[rows]]),
                np.concatenate([self.y[rows], self.y[rows]]))


def training_set(store: Store, rules_version: str,
                 features: tuple[str, ...] = FEATURES,
                 labels: pa.Table | None = None) -> TrainingSet:
    """Every labelled leg end of ``rules_version`` with ``features`` as the model reads them
    (:func:`~parkloop.interpret.model.feature_matrix`). Features without a single observed
    value in the set (e.g. car-link features where no phone reports its car) are left out.
    ``labels``: the :func:`leg_end_labels` already read, if they were."""
    table = training_table(store, rules_version, labels)
    X = feature_matrix(table, features)
    observed = ~np.all(np.isnan(X), axis=0) if len(X) else np.ones(len(features), bool)
    X = X[:, observed]
    kept = tuple(f for f, ok in zip(features, observed, strict=True) if ok)
    return TrainingSet(X, np.asarray(table.column("parked").to_numpy(zero_copy_only=False),
                                     dtype=bool),
                       np.asarray(table.column("device_id").to_pylist(), dtype=object),
                       np.asarray(table.column("mode").to_pylist(), dtype=object), kept,
                       np.asarray(table.column("source").to_pylist(), dtype=object))


def training_table(store: Store, rules_version: str,
                   labels: pa.Table | None = None) -> pa.Table:
    """The labelled leg-end feature table of ``rules_version``: every column of
    :func:`leg_end_labels` (``labels``, if already read) and every leg-end feature, ordered
    by device and end time (what :func:`parkloop.interpret.spark.training_table` builds on
    Spark)."""
    labels = leg_end_labels(store, rules_version) if labels is None else labels
    con = store.con.cursor()
    con.register("_labels", labels)
    table: pa.Table = con.sql(f"""
        SELECT l.*, {', '.join(f'e.{f}' for f in FEATURES)}
        FROM _labels l JOIN facts_leg_end e
          ON e.rules_version = $rv AND e.device_id = l.device_id AND e.ended_ms = l.ended_ms
        ORDER BY l.device_id, l.ended_ms""", params={"rv": rules_version}).to_arrow_table()
    con.close()
    return table
