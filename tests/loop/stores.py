"""Stores whose champion was trained on the simulator's default scenario, for the loop's and
the console's tests (a plugin of tests/conftest.py), and the small spec and thresholds they
declare (the shipped ones need more data than a test can simulate in seconds). The product's
modules are imported where used: a plugin is imported before anything runs, in pytest-xdist's
controller too, which runs no test."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import once, seed_registry

DEVICES, DAYS, LABEL_SHARE = 12, 7, 0.6
SHIFT_START = date(2025, 3, 10)
"""the shifted scenario's people start the day after the default week ends"""

LOOP_TOML = """
[schedule]
min_retrain_interval_s = 0
[monitors.drift]
min_samples = 30
[monitors.accuracy]
min_samples = 20
[monitors.parked_share]
min_samples = 30
[monitors.confidence]
min_samples = 30
[gate]
min_unseen = 20
[rollback]
min_samples = 10
"""


def small_spec() -> str:
    """The shipped spec with logistic regression in place of boosting, three folds and lower
    floors: trains in seconds on a week of twelve simulated people."""
    from parkloop.interpret.spec import SHIPPED

    text = (SHIPPED / "parked.toml").read_text()
    boosting = text[text.index("[learners.boosting]"):text.index("[train]")]
    text = text.replace(boosting, '[learners.logistic]\nkind = "logistic"\nC = 0.3\n\n')
    for old, new in (("folds = 5 ", "folds = 3 "), ("min_f1 = 0.60", "min_f1 = 0.40"),
                     ("min_pr_auc = 0.60", "min_pr_auc = 0.40")):
        assert old in text, old
        text = text.replace(old, new)
    return text


@pytest.fixture(scope="session")
def default_champion(tmp_path_factory: pytest.TempPathFactory, mlflow_db: Path) -> Path:
    """A store: twelve people of the default scenario for a week, and version 1 trained on
    them and published, made once per run (copy it before use)."""

    from parkloop.interpret.registry import Registry
    from parkloop.interpret.spec import load_spec
    from parkloop.interpret.train import train
    from parkloop.simulate import simulate
    from parkloop.store import Store

    def make(where: Path) -> None:
        store = where / "store"
        with Store.create(store) as s:
            simulate(s, devices=DEVICES, days=DAYS, label_share=LABEL_SHARE)
            seed_registry(store, mlflow_db)
            (store / "specs").mkdir()
            (store / "specs" / "parked.toml").write_text(small_spec())
            (store / "loop.toml").write_text(LOOP_TOML)
            assert train(s, Registry(store), load_spec("parked", store), publish=True).published

    return once(tmp_path_factory, "loop", make) / "store"


@pytest.fixture(scope="session")
def shifted(default_champion: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """:func:`default_champion` after twelve people of the shifted scenario sent their next
    week, made once per run (copy it before use)."""

    from parkloop.facts.build import build
    from parkloop.facts.rules import load_rules
    from parkloop.interpret.spec import load_spec
    from parkloop.simulate import simulate
    from parkloop.store import Store

    def make(where: Path) -> None:
        store = where / "store"
        shutil.copytree(default_champion, store)
        with Store.open(store) as s:
            simulate(s, devices=DEVICES, days=DAYS, label_share=LABEL_SHARE,
                     scenario="shifted", start=SHIFT_START)
            build(s, load_rules(load_spec("parked", store).rules, store))  # once, not per copy

    return once(tmp_path_factory, "loop-shifted", make) / "store"


@pytest.fixture
def champion_store(default_champion: Path, tmp_path: Path) -> Path:
    shutil.copytree(default_champion, tmp_path / "store")
    return tmp_path / "store"


@pytest.fixture
def shifted_store(shifted: Path, tmp_path: Path) -> Path:
    shutil.copytree(shifted, tmp_path / "store")
    return tmp_path / "store"


def truth_f1(store: Path, version: str, devices_like: str = "sim-shifted-%") -> float:
    """F1 of ``version``'s parked calls on the leg ends of ``devices_like`` against the
    simulator's ground truth."""
    import pyarrow as pa

    from parkloop.interpret.model import ParkedModel
    from parkloop.interpret.registry import Registry
    from parkloop.simulate.truth import parking_scores
    from parkloop.store import Store

    model = ParkedModel.load(Registry(store).artifacts(version))
    with Store.open(store, read_only=True) as s:
        ends = s.con.sql("SELECT * FROM facts_leg_end WHERE rules_version = $rv AND device_id "
                         "LIKE $d", params={"rv": model.rules_version, "d": devices_like}
                         ).to_arrow_table()
        called = ends.filter(pa.array(model.predict(ends) >= model.threshold))
        return parking_scores(s, called, devices_like)["f1"]
