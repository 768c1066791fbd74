"""Safety: a champion the loop published that then does worse on live labels than the one it
replaced is rolled back, once; an operator's own publish is never rolled back by the loop."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from parkloop.interpret.registry import Registry
from parkloop.loop.run import run_pass
from parkloop.store import Store
from tests.conftest import seed_registry
from tests.serve.conftest import register

LOOP_TOML = "[rollback]\nmin_samples = 5\nmargin = 0.05\n"


@pytest.fixture
def two_rules(sim_store_path: Path, tmp_path: Path, mlflow_db: Path) -> Path:
    """The small simulated store with two rule models: version 1 (p85 speed >= 10 m/s, a
    fair rule) and version 2 (>= 0 m/s: everything is a parking)."""
    store = tmp_path / "store"
    shutil.copytree(sim_store_path, store)
    (store / "loop.toml").write_text(LOOP_TOML)
    seed_registry(store, mlflow_db)
    assert register(store, 10.0, tmp_path) == "1"
    assert register(store, 0.0, tmp_path) == "2"
    Registry(store).publish("1", reason="test: the fair rule", actor="cli:test")
    return store


def one_pass(store: Path) -> dict:
    with Store.open(store) as s:
        return run_pass(s, store, actor="test")


def test_a_loop_published_champion_doing_worse_is_rolled_back(two_rules: Path) -> None:
    registry = Registry(two_rules)
    registry.publish("2", reason="test: as if the loop had published it", actor="loop:test")
    record = one_pass(two_rules)
    assert record["decision"] == "rolled_back", record
    check = record["rollback"]
    assert check["previous"] == "1"
    assert check["labels"] >= 5
    assert check["accuracy"]["champion"] < check["accuracy"]["previous_champion"] - 0.05
    assert registry.champion() == "1"
    last = registry.audit()[-1]
    assert (last.action, last.version, last.previous, last.actor) == (
        "rollback", "1", "2", "loop:test")
    # the restored champion is not judged against anything: no second rollback
    after = one_pass(two_rules)
    assert after["decision"] != "rolled_back"
    assert "rollback" not in after
    assert registry.champion() == "1"


def test_an_operators_publish_is_not_rolled_back_by_the_loop(two_rules: Path) -> None:
    registry = Registry(two_rules)
    registry.publish("2", reason="test: the operator wants it", actor="cli:test")
    record = one_pass(two_rules)
    assert record["decision"] != "rolled_back"
    assert "rollback" not in record
    assert registry.champion() == "2"
