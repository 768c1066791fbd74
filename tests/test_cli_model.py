"""``parkloop model list | publish | rollback | history`` end to end, as a user runs them."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer.main

from parkloop.cli import app
from parkloop.interpret.registry import Registry
from parkloop.store import Store
from tests.conftest import run_cli, seed_registry
from tests.test_cli import commands, one_line_error

LINEAGE = {"rules_version": "v1@0123abcd", "raw_watermark": "1767225600000",
           "label_set_hash": "0123456789abcdef" * 4, "spec_name": "parked", "spec_hash": "ab"}


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> Path:
    """A store with model versions 1 and 2 registered, none published (made once: creating the
    MLflow database takes seconds); copy it before writing to it."""
    root = tmp_path_factory.mktemp("cli-model")
    store = root / "store"
    Store.create(store).close()
    seed_registry(store, mlflow_db)
    registry = Registry(store)
    for n in (1, 2):
        art = root / f"art-{n}"
        art.mkdir()
        (art / "model.joblib").write_bytes(b"model %d" % n)
        registry.register(art, params={"n": str(n)}, tags=LINEAGE,
                          metrics={"f1": 0.8 + n / 100, "pr_auc": 0.75, "e2e_f1": 0.7})
    return store


@pytest.fixture
def store(template: Path, tmp_path: Path) -> Path:
    shutil.copytree(template, tmp_path / "store")
    return tmp_path / "store"


def test_the_model_commands_exist_and_take_store() -> None:
    cmds = commands(typer.main.get_command(app))
    assert {"model list", "model publish", "model rollback", "model history"} <= set(cmds)


def test_list_publish_rollback_history(store: Path) -> None:
    first = run_cli("model", "publish", "1", "--reason", "first model", store=store)
    assert "champion none -> 1" in first.stderr
    second = json.loads(run_cli("model", "publish", "2", "--json", store=store).stdout)
    assert second["champion"] == "2"
    assert second["record"]["previous"] == "1"
    status = json.loads(run_cli("status", "--json", store=store).stdout)
    assert status["models"] == {"champion": "2", "versions": 2}

    back = json.loads(run_cli("model", "rollback", "--reason", "bad answers", "--json",
                              store=store).stdout)
    assert back["champion"] == "1"
    assert back["record"]["action"] == "rollback"
    history = json.loads(run_cli("model", "history", "--json", store=store).stdout)
    assert [(h["action"], h["version"], h["previous"], h["reason"]) for h in history] == [
        ("publish", "1", None, "first model"),
        ("publish", "2", "1", ""),
        ("rollback", "1", "2", "bad answers"),
    ]
    assert all(h["actor"].startswith("cli") for h in history)

    listed = json.loads(run_cli("model", "list", "--json", store=store).stdout)
    assert [v["version"] for v in listed] == ["1", "2"]
    assert [v["is_champion"] for v in listed] == [True, False]
    assert listed[0]["tags"] == LINEAGE
    assert listed[1]["metrics"]["f1"] == pytest.approx(0.82)

    table = run_cli("model", "list", store=store).stdout
    row = next(line for line in table.splitlines() if "0123456789ab" in line and "*" in line)
    assert "v1@0123abcd" in row
    assert "0.810" in row  # version 1's F1: the champion again
    assert "rollback" in run_cli("model", "history", store=store).stdout
    assert "champion" in run_cli("status", store=store).stdout


def test_bad_version_and_nothing_to_roll_back_exit_1_with_one_line(store: Path) -> None:
    bad = run_cli("model", "publish", "9", store=store, check=False)
    assert "no model version '9' (known versions: 1, 2)" in one_line_error(bad)
    assert bad.returncode == 1
    nothing = run_cli("model", "rollback", store=store, check=False)
    assert "nothing to roll back to" in one_line_error(nothing)


def test_publish_works_while_a_server_holds_the_store(store: Path) -> None:
    with Store.create(store):  # DuckDB's write lock, as `parkloop serve` would hold it
        proc = run_cli("model", "publish", "2", "--reason", "hot swap", store=store)
    assert "champion none -> 2" in proc.stderr


def test_an_empty_store_has_no_models(tmp_path: Path) -> None:
    store = tmp_path / "s"
    Store.create(store).close()
    assert json.loads(run_cli("model", "list", "--json", store=store).stdout) == []
    assert json.loads(run_cli("model", "history", "--json", store=store).stdout) == []
    assert "no model versions" in run_cli("model", "list", store=store).stderr
    status = json.loads(run_cli("status", "--json", store=store).stdout)
    assert status["models"] == {"champion": None, "versions": 0}
    assert not (store / "registry").exists(), "reading must not create a registry"
    missing = run_cli("model", "list", store=tmp_path / "nope", check=False)
    assert "no parkloop store" in one_line_error(missing)
