"""Shared fixtures: a fresh store, the GeoLife sample, and the CLI as a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import settings

from parkloop.store import Store

pytest_plugins = ["tests.loop.stores"]
"""the stores with trained champions (the loop's and the console's tests)"""

# compiled kernels take a while on their first call: time budgets belong in bench/, not here
settings.register_profile("parkloop", deadline=None)
settings.load_profile("parkloop")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GEOLIFE_MINI = SHARED_DATA / "geolife" / "geolife-mini.zip"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.create(tmp_path / "store") as s:
        yield s


@pytest.fixture(scope="session")
def sim_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated store (both scenarios), made once per test session; copy it before
    writing to it."""
    from parkloop.simulate import simulate

    path = tmp_path_factory.mktemp("sim") / "store"
    with Store.create(path) as store:
        simulate(store, devices=4, days=3, seed=11)
        simulate(store, devices=2, days=3, seed=11, scenario="shifted")
    return path


@pytest.fixture
def sim_store(sim_store_path: Path) -> Iterator[Store]:
    with Store.open(sim_store_path, read_only=True) as store:
        yield store


@pytest.fixture(scope="session")
def geolife_mini() -> Path:
    if not GEOLIFE_MINI.is_file():
        if os.environ.get("PARKLOOP_REQUIRE_DATA"):  # CI: a skipped data tier is a failure
            pytest.fail(f"PARKLOOP_REQUIRE_DATA is set but {GEOLIFE_MINI} is missing")
        pytest.skip(f"GeoLife sample not found at {GEOLIFE_MINI} (it lives in ../shared/data "
                    "beside the checkout)")
    return GEOLIFE_MINI


def run_cli(*args: str | Path, store: Path | None = None, check: bool = True,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``parkloop ARGS`` in a subprocess, as a user would."""
    argv = [sys.executable, "-m", "parkloop", *map(str, args)]
    if store is not None:
        argv += ["--store", str(store)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "COLUMNS": "200", **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"parkloop {args} exited {proc.returncode}:\n{proc.stderr}")
    return proc
