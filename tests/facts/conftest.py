"""Shared data for the facts tests: a small simulated store, built once per session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from parkloop.simulate import simulate
from parkloop.store import Store


@pytest.fixture(scope="session")
def sim_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sim") / "store"
    with Store.create(path) as store:
        simulate(store, devices=4, days=3, seed=11)
        simulate(store, devices=2, days=3, seed=11, scenario="shifted")
    return path


@pytest.fixture
def sim_store(sim_store_path: Path) -> Iterator[Store]:
    with Store.open(sim_store_path, read_only=True) as store:
        yield store
