"""The phone's own signals: a phone that reports its car's link gets better parking calls than
a GPS-only one, and a phone that never reported a link has no link features (missing, not
"no disconnect") at the model's input. The figures on more people: bench/signals.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.dataset import training_set
from parkloop.interpret.heldout import held_out_calls
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.model import feature_matrix
from parkloop.interpret.spec import SHIPPED, load_spec
from parkloop.interpret.train import evaluate
from parkloop.simulate import simulate
from parkloop.simulate.truth import parking_scores
from parkloop.store import Store

LINK = ("link_disconnect_near_end",)


def people(store: Store) -> dict[str, list[str]]:
    rows = store.con.execute("SELECT device_id, owns_car, vehicle_link FROM truth.devices "
                             "ORDER BY device_id").fetchall()
    return {"link": [d for d, _, link in rows if link],
            "gps": [d for d, car, link in rows if car and not link]}


def test_link_features_missing_without_links() -> None:
    table = pa.table({"link_seen": [True, True, False, None],
                      "link_disconnect_near_end": [True, False, False, False],
                      "leg_duration_s": [60.0, None, 10.0, 5.0]})
    X = feature_matrix(table, ("leg_duration_s", "link_disconnect_near_end"))
    assert X[0, 0] == 60.0
    assert np.isnan(X[1, 0])
    assert X[2, 0] == 10.0
    assert X[:2, 1].tolist() == [1.0, 0.0]
    assert np.isnan(X[2:, 1]).all()


@pytest.fixture(scope="module")
def linked(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Twenty simulated people for a week, everyone labelling (seven cars report their
    link, seven do not), and the shipped spec with logistic regression alone, three folds:
    enough labels to learn what a link says, in seconds."""
    path = tmp_path_factory.mktemp("signals") / "store"
    text = (SHIPPED / "parked.toml").read_text()
    learners = text[text.index("[learners.rule]"):text.index("[train]")]
    text = text.replace(learners, '[learners.logistic]\nkind = "logistic"\nC = 0.3\n\n')
    text = text.replace("folds = 5 ", "folds = 3 ")
    with Store.create(path) as store:
        simulate(store, devices=20, days=7, label_share=1.0)
        (path / "specs").mkdir()
        (path / "specs" / "linked.toml").write_text(text)
        build(store, load_rules(load_spec("linked", path).rules, path))
    return path


def test_link_people_called_better(linked: Path) -> None:
    with Store.open(linked, read_only=True) as store:
        who = people(store)
        assert len(who["link"]) >= 3
        assert len(who["gps"]) >= 3
        spec = load_spec("linked", store.path)
        rv = load_rules(spec.rules, store.path).identity
        ends = store.con.sql("SELECT * FROM facts_leg_end WHERE rules_version = $rv",
                             params={"rv": rv}).to_arrow_table()
        X = feature_matrix(ends, LINK)[:, 0]
        device = np.asarray(ends.column("device_id").to_pylist(), object)
        assert np.isnan(X[np.isin(device, who["gps"])]).all()
        mine = np.isin(device, who["link"])
        assert not np.isnan(X[mine]).all()
        assert np.nansum(X[mine]) > 0

        labels = leg_end_labels(store, rv)
        assert "link_disconnect_near_end" in training_set(store, rv, tuple(spec.features),
                                                          labels).features
        result = evaluate(store, spec, rv, labels, end_to_end=False)
        held = held_out_calls(store, spec, result, rv)
        link = parking_scores(store, held.calls(), devices=who["link"])
        gps = parking_scores(store, held.calls(), devices=who["gps"])
    assert link["f1"] >= 0.85, link
    assert link["f1"] >= gps["f1"] + 0.05, (link, gps)
    assert link["precision"] >= gps["precision"], (link, gps)
