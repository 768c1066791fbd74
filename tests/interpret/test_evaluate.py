"""Training sets and grouped cross-validation: people never straddle train and test."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret import evaluate
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.dataset import TrainingSet, training_set
from parkloop.simulate import simulate
from parkloop.store import Store


@pytest.fixture(scope="module")
def labelled(tmp_path_factory: pytest.TempPathFactory) -> TrainingSet:
    path = tmp_path_factory.mktemp("lab") / "s"
    with Store.create(path) as store:
        simulate(store, devices=8, days=3, seed=21, label_share=1.0)
        rules = load_rules("v1")
        build(store, rules)
        return training_set(store, rules.identity)


def test_training_set_rows_are_labelled_leg_ends(labelled: TrainingSet) -> None:
    assert len(labelled) > 20
    assert labelled.X.shape == (len(labelled), len(labelled.features))
    assert 0 < labelled.y.sum() < len(labelled)
    assert set(labelled.modes[labelled.y].tolist()) == {"car"}
    assert "leg_max_speed_mps" in labelled.features


def test_grouped_cv_holds_people_out(labelled: TrainingSet,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[set[str], set[str]]] = []
    real = evaluate.StratifiedGroupKFold.split

    def spy(self: object, X: np.ndarray, y: np.ndarray, groups: np.ndarray):  # type: ignore[no-untyped-def]
        for train, test in real(self, X, y, groups):  # type: ignore[arg-type]
            seen.append((set(groups[train].tolist()), set(groups[test].tolist())))
            yield train, test

    monkeypatch.setattr(evaluate.StratifiedGroupKFold, "split", spy)
    col = labelled.features.index("leg_max_speed_mps")
    report = evaluate.grouped_cv(labelled, "rule", lambda: ThresholdRule(col, 8.0), folds=4)
    assert len(seen) == 4
    assert all(not (train & test) for train, test in seen)
    assert 0.0 <= report.f1 <= 1.0
    assert report.n == len(labelled)
    assert set(report.called_parked_by_mode) == set(labelled.modes.tolist())


def test_empty_features_are_left_out(tmp_path: Path, sim_store_path: Path) -> None:
    path = tmp_path / "s"
    shutil.copytree(sim_store_path, path)
    with Store.open(path) as store:
        rules = load_rules("v1")
        build(store, rules)
        data = training_set(store, rules.identity)
    assert not np.all(np.isnan(data.X), axis=0).any()
