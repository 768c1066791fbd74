"""Shared fixtures: a fresh store, the GeoLife sample, and the CLI (in this interpreter or in a
fresh one)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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
SPARK_MASTER = "local[2]"


TIERS = {
    "spark": ("spark",),
    "browser": ("browser",),
    "server": ("sim_server", "console_server", "fed"),
    "data": ("geolife_mini",),
}
"""marker -> the fixtures that put a test in that tier (a module starting servers by itself
says so with ``pytestmark``); each tier runs alone with ``pytest -m NAME``"""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIERS.items():
            if used.intersection(fixtures):
                item.add_marker(marker)


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


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One local Spark session for the whole run (each JVM start costs 10-45 s here): the
    Spark engine and ``parkloop ... --engine spark --spark-master local[2]`` run in this
    interpreter find it active and use it."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get("PARKLOOP_REQUIRE_SPARK"):  # CI: a skipped Spark tier is a failure
            pytest.fail("PARKLOOP_REQUIRE_SPARK is set but PySpark is not installed")
        pytest.skip("PySpark is not installed (pip install 'parkloop[spark]')")
    from parkloop.facts.spark import spark_session

    with spark_session(SPARK_MASTER) as session:
        yield session


@pytest.fixture(scope="session")
def geolife_mini_store(geolife_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the GeoLife sample imported, made once per test session; open it
    read-only or copy it before writing to it (tests of the import itself import afresh)."""
    from parkloop.raw.geolife import import_geolife

    path = tmp_path_factory.mktemp("geolife-mini") / "store"
    with Store.create(path) as store:
        import_geolife(store, geolife_mini)
    return path


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with its tables made, once per session: MLflow's migrations
    take 10-25 s here, every time a store's registry is first used. :func:`seed_registry`
    puts a copy into a new store (the registry's own tests make theirs from nothing)."""
    import parkloop.interpret.registry  # noqa: F401  (MLflow's telemetry off before import)

    root = tmp_path_factory.mktemp("mlflow")
    db = root / "mlflow.db"
    old = Path.cwd()
    os.chdir(root)  # whatever MLflow writes beside its database stays here
    try:
        from mlflow import MlflowClient

        client = MlflowClient(tracking_uri=f"sqlite:///{db}", registry_uri=f"sqlite:///{db}")
        client.search_experiments()
        client.search_registered_models()
    finally:
        os.chdir(old)
    return db


def seed_registry(store: Path, mlflow_db: Path) -> None:
    """Give ``store`` (whose registry is not used yet) a copy of :func:`mlflow_db`."""
    from parkloop.interpret.registry import DB_FILE, REGISTRY_DIR

    (store / REGISTRY_DIR).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(mlflow_db, store / REGISTRY_DIR / DB_FILE)


def run_cli(*args: str | Path, store: Path | None = None, check: bool = True,
            env: dict[str, str] | None = None, process: bool = False
            ) -> subprocess.CompletedProcess[str]:
    """Run ``parkloop ARGS`` as a user would: in this interpreter through the CLI's entry
    point (:func:`parkloop.cli.app.run`: the same parsing, error mapping and exit codes), or,
    with ``process``, in a fresh interpreter (for what only a process shows: the entry point,
    start-up, another process holding the store)."""
    argv = [*map(str, args)]
    if store is not None:
        argv += ["--store", str(store)]
    env = {"COLUMNS": "200", **(env or {})}
    if process:
        proc = subprocess.run([sys.executable, "-m", "parkloop", *argv], capture_output=True,
                              text=True, timeout=300, env={**os.environ, **env})
    else:
        proc = _run_here(argv, env)
    if check and proc.returncode != 0:
        raise AssertionError(f"parkloop {args} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def _run_here(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    from click.testing import CliRunner

    from parkloop.cli import _common
    from parkloop.cli.app import run

    # the consoles read COLUMNS once, when the CLI is first imported: give them this run's
    width = int(env.get("COLUMNS", "80"))
    _common.out.width = _common.err.width = width
    with CliRunner().isolation(env=env) as (stdout, stderr, _):
        code = run(argv)
        sys.stdout.flush()
        sys.stderr.flush()
        return subprocess.CompletedProcess(["parkloop", *argv], code,
                                           stdout.getvalue().decode(),
                                           stderr.getvalue().decode())
