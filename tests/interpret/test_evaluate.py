"""Training sets and grouped cross-validation: people never straddle train and test, and the
figures are the ones a hand count gives."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

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


def synthetic(seed: int, people: int = 6, per_person: int = 40, signal: float = 1.0
              ) -> TrainingSet:
    """Random leg ends: feature 0 carries ``signal`` (0: none), feature 1 is noise."""
    rng = np.random.default_rng(seed)
    n = people * per_person
    modes = rng.choice(np.array(["car", "taxi", "bus", "walk"], dtype=object), n,
                       p=[0.4, 0.2, 0.2, 0.2])
    y = modes == "car"
    X = np.column_stack([signal * y + rng.normal(size=n), rng.normal(size=n)])
    groups = np.repeat(np.array([f"p{i}" for i in range(people)], dtype=object), per_person)
    return TrainingSet(X, y, groups, modes, ("signal", "noise"))


def test_training_set_rows_are_labelled_leg_ends(labelled: TrainingSet) -> None:
    assert len(labelled) > 20
    assert labelled.X.shape == (len(labelled), len(labelled.features))
    assert 0 < labelled.y.sum() < len(labelled)
    assert set(labelled.modes[labelled.y].tolist()) == {"car"}
    assert "leg_max_speed_mps" in labelled.features


def test_grouped_cv_holds_people_out(labelled: TrainingSet) -> None:
    col = labelled.features.index("leg_max_speed_mps")
    scores = evaluate.cross_validate(labelled, "rule", lambda: ThresholdRule(col, 8.0), folds=4)
    assert sorted(set(scores.fold.tolist())) == [0, 1, 2, 3]
    for person in set(labelled.groups.tolist()):  # a person is tested in one fold only
        assert len(set(scores.fold[labelled.groups == person].tolist())) == 1
    assert set(np.unique(scores.p).tolist()) <= {0.0, 1.0}
    assert set(scores.importance) == set(labelled.features)
    assert scores.importance["leg_max_speed_mps"] == max(scores.importance.values())
    m = evaluate.pooled(labelled, scores)
    assert m.n == len(labelled)
    assert 0.0 <= m.f1 <= 1.0
    assert len(m.fold_f1) == len(m.fold_pr_auc) == 4
    assert set(m.called_parked_by_mode) == set(labelled.modes.tolist())
    with pytest.raises(ValueError, match="read-only"):
        scores.p[0] = 0.5


def test_fewer_people_than_folds() -> None:
    data = synthetic(1, people=3)
    fold = evaluate.fold_numbers(data, folds=5)
    assert sorted(set(fold.tolist())) == [0, 1, 2]
    alone = TrainingSet(data.X, data.y, np.full(len(data), "p0", dtype=object), data.modes,
                        data.features)
    with pytest.raises(ValueError, match="at least 2 people"):
        evaluate.cross_validate(alone, "lr", LogisticRegression)


def test_metrics_by_hand() -> None:
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    p = np.array([0.9, 0.6, 0.2, 0.7, 0.1, 0.3, 0.8, 0.0])
    modes = np.array(["car", "car", "car", "taxi", "bus", "bus", "walk", "taxi"], dtype=object)
    fold = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = evaluate.metrics(y, p, 0.5, fold, modes)
    # called: 0.9 0.6 0.7 0.8 -> tp 2, fp 2, fn 1
    assert (m.n, m.positives) == (8, 3)
    assert m.precision == pytest.approx(2 / 4)
    assert m.recall == pytest.approx(2 / 3)
    assert m.f1 == pytest.approx(2 * 2 / (2 * 2 + 2 + 1))
    # ranked: 0.9+ 0.8- 0.7- 0.6+ 0.3- 0.2+ ...: AP = (1/1 + 2/4 + 3/6) / 3
    assert m.pr_auc == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m.fold_f1[0] == pytest.approx(2 * 2 / (2 * 2 + 1 + 1))
    assert math.isnan(m.fold_f1[1])  # fold 1 holds no car end
    assert math.isnan(m.fold_pr_auc[1])
    assert m.called_parked_by_mode == {"bus": (0, 2), "car": (2, 3), "taxi": (1, 2),
                                       "walk": (1, 1)}
    assert [tuple(c) for c in m.confusions] == [
        ("car", "not parked", 1, 3), ("taxi", "parked", 1, 2), ("bus", "parked", 0, 2),
        ("walk", "parked", 1, 1)]
    none_called = evaluate.metrics(y, np.zeros(8), 0.5)
    assert math.isnan(none_called.precision)
    assert none_called.recall == 0.0


def _f1(y: np.ndarray, called: np.ndarray) -> float:
    tp = int(np.sum(y & called))
    return 2 * tp / (int(y.sum()) + int(called.sum()))


def test_best_threshold_maximises_f1() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        y = rng.random(60) < 0.4
        p = np.round(np.clip(0.3 * y + rng.random(60) * 0.7, 0, 1), 2)  # ties included
        t = evaluate.best_threshold(y, p)
        oracle = max(_f1(y, p >= u) for u in np.unique(p))  # every distinct cut, tried
        assert _f1(y, p >= t) == pytest.approx(oracle)
    with pytest.raises(ValueError, match="both"):
        evaluate.best_threshold(np.zeros(3, bool), np.ones(3))


def test_nested_threshold_f1_is_not_above_the_pooled_best() -> None:
    for seed in range(5):
        data = synthetic(seed, signal=0.0)
        scores = evaluate.cross_validate(data, "lr", LogisticRegression, importance=False)
        pooled_best = _f1(data.y, scores.p >= evaluate.best_threshold(data.y, scores.p))
        assert evaluate.nested_threshold_f1(data, scores) <= pooled_best


def test_nested_threshold_f1_by_hand() -> None:
    y = np.array([1, 0, 1, 0, 1, 0], bool)
    groups = np.array(["a", "a", "b", "b", "c", "c"], dtype=object)
    data = TrainingSet(np.zeros((6, 1)), y, groups, np.where(y, "car", "bus"), ("x",))
    p = np.array([0.9, 0.1, 0.5, 0.45, 0.6, 0.55])
    scores = evaluate.Scores("s", p, 0.5, np.array([0, 0, 1, 1, 2, 2]), {})
    # fold 0 at the best of folds 1+2 (0.5, 0.45, 0.6, 0.55 -> 0.475): tp 1
    # fold 1 at the best of folds 0+2 (0.9, 0.1, 0.6, 0.55 -> 0.575): 0.5 and 0.45 missed
    # fold 2 at the best of folds 0+1 (0.9, 0.1, 0.5, 0.45 -> 0.475): tp 1, fp 1
    assert evaluate.nested_threshold_f1(data, scores) == pytest.approx(2 * 2 / (3 + 3))
    separable = evaluate.Scores("s", y * 0.8 + 0.1, 0.5, scores.fold, {})
    assert evaluate.nested_threshold_f1(data, separable) == 1.0


def test_per_group_covers_every_person_once() -> None:
    data = synthetic(4)
    scores = evaluate.cross_validate(data, "lr", LogisticRegression, importance=False)
    rows = evaluate.per_group(data, scores)
    assert [g for g, _ in rows] == [f"p{i}" for i in range(6)]
    assert sum(m.n for _, m in rows) == len(data)
    assert sum(m.positives for _, m in rows) == int(data.y.sum())


def test_empty_features_are_left_out(tmp_path: Path, sim_store_path: Path) -> None:
    path = tmp_path / "s"
    shutil.copytree(sim_store_path, path)
    with Store.open(path) as store:
        rules = load_rules("v1")
        build(store, rules)
        data = training_set(store, rules.identity)
    assert not np.all(np.isnan(data.X), axis=0).any()


def test_permutation_drops_agree_with_sklearn() -> None:
    """The batched permutation importance measures what sklearn's does (up to the shuffles
    drawn): the feature the target depends on most drops most, noise features about 0."""
    from sklearn.inspection import permutation_importance
    from sklearn.metrics import average_precision_score

    from parkloop.interpret.evaluate import permutation_drops
    from parkloop.interpret.model import make_learner
    from parkloop.interpret.spec import Logistic

    rng = np.random.default_rng(0)
    X = rng.normal(size=(600, 6))
    y = (X[:, 0] + 0.5 * X[:, 1] + rng.normal(size=600)) > 0.8
    model = make_learner(Logistic(kind="logistic", C=0.3), tuple("abcdef"), "sigmoid").fit(
        X[:300], y[:300])
    mine = permutation_drops(model, X[300:], y[300:], repeats=30)
    theirs = permutation_importance(
        model, X[300:], y[300:], n_repeats=30, random_state=0,
        scoring=lambda m, x, t: average_precision_score(t, m.predict_proba(x)[:, 1])
    ).importances_mean
    assert np.argmax(mine) == 0
    assert mine[0] > mine[1] > 0.02
    np.testing.assert_allclose(mine, theirs, atol=0.03)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from([0.0, 0.1, 0.5, 0.5, 0.9, 1.0])),
                min_size=1, max_size=40))
def test_average_precision_is_sklearns(rows: list[tuple[bool, float]]) -> None:
    """Ties included (few distinct scores), and NaN where nothing is positive."""
    from sklearn.metrics import average_precision_score

    from parkloop.interpret.evaluate import average_precision

    y = np.array([r[0] for r in rows])
    p = np.array([r[1] for r in rows])
    if not y.any():
        assert np.isnan(average_precision(y, p))
    else:
        assert average_precision(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
