"""Shared fixtures: a fresh store, the GeoLife sample, and the CLI (in this interpreter or in a
fresh one)."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from parkloop.store import Store

pytest_plugins = ["tests.loop.stores", "tests.browser"]
"""the stores with trained champions (the loop's and the console's tests), and Chromium (the
driver's page's and the console's)"""

# compiled kernels take a while on their first call: time budgets belong in bench/, not here
settings.register_profile("parkloop", deadline=None)
settings.load_profile("parkloop")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
GEOLIFE_MINI = SHARED_DATA / "geolife" / "geolife-mini.zip"
SPARK_MASTER = "local[2]"
SPARK_JVM = "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC"
"""the test session's JVM options: the tests' Spark jobs are small and short, so the quick
JIT compiler alone and one garbage-collector thread (this halves the JVM's CPU time here)"""


TIERS = {
    "spark": ("spark",),
    "browser": ("browser",),
    "server": ("sim_server", "console_server", "fed"),
    "data": ("geolife_mini",),
}
"""marker -> the fixtures that put a test in that tier (a module starting servers by itself
says so with ``pytestmark``); each tier runs alone with ``pytest -m NAME``"""


LONGEST = (
    "tests/console/test_views.py", "tests/serve/test_schemathesis.py",
    "tests/loop/test_server_loop.py", "tests/facts/test_spark.py",
    "tests/facts/test_cpu_determinism.py", "tests/serve/test_live.py",
    "tests/loop/test_personal.py", "tests/serve/test_faults.py",
    "tests/facts/test_incremental.py", "tests/serve/test_api.py", "tests/app/test_page.py",
    "tests/simulate/test_stream_feedback.py", "tests/serve/test_console_api.py",
    "tests/interpret/test_signals.py", "tests/serve/test_tokens.py", "tests/test_cli.py",
    "tests/test_startup_errors.py", "tests/serve/test_hot_swap.py",
)
"""the test files that take longest (10-85 s each on 2 cores), longest first: pytest-xdist
hands out whole files in collection order (``--no-loadscope-reorder``), so these start first
and the short files fill in at the end, leaving no core idle while one long file finishes (a
file missing here only runs in its place in the tree)"""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in TIERS.items():
            if used.intersection(fixtures):
                item.add_marker(marker)
    root = config.rootpath
    rank = {root / name: i for i, name in enumerate(LONGEST)}
    items.sort(key=lambda item: rank.get(item.path, len(LONGEST)))  # stable: tree order


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.create(tmp_path / "store") as s:
        yield s


@contextmanager
def _locked(path: Path, meanwhile: Callable[[], object] | None = None) -> Iterator[None]:
    """Hold the lock file ``path``; if another process holds it, call ``meanwhile`` first,
    then wait."""
    with path.open("a") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if meanwhile is not None:
                meanwhile()
            fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _shared_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # one per run, shared by its workers
    return root


def once(tmp_path_factory: pytest.TempPathFactory, name: str,
         make: Callable[[Path], object], meanwhile: Callable[[], object] | None = None) -> Path:
    """The directory ``name`` that ``make(directory)`` filled, once for the whole run: under
    pytest-xdist the first worker to ask makes it in the run's common temporary directory,
    under a file lock, and the others (after ``meanwhile``, if given) wait for it and reuse
    it (pytest-xdist's documented pattern); without xdist, once for the session. What it
    holds is shared: open it read-only or copy it before writing to it."""
    root = _shared_root(tmp_path_factory)
    path, done = root / name, root / f"{name}.done"
    with _locked(root / f"{name}.lock", meanwhile):
        if not done.exists():
            shutil.rmtree(path, ignore_errors=True)  # a worker that failed half way
            path.mkdir()
            make(path)
            done.touch()
    return path


WHILE_COMPILING = ("mlflow_db", "sim_store_path", "geolife_mini_store", "registry_template")
"""what needs no compiled kernel: made, where the run needs it, by a worker waiting for another
to compile them (``registry_template`` is tests/serve's)"""


@pytest.fixture(scope="session", autouse=True)
def compiled_kernels(tmp_path_factory: pytest.TempPathFactory,
                     request: pytest.FixtureRequest) -> None:
    """The facts' Numba kernels compiled, once for the run, before any test of a run on
    several workers: Numba caches them beside the code (``cache=True``), but in a fresh clone
    every xdist worker, and every server or CLI process a test starts before the cache is
    written, would compile the same kernels side by side. One worker compiles them here (a
    small build; half a second once they are cached); another, rather than wait idle, first
    makes what the run needs of :data:`WHILE_COMPILING`; then both, and every process started
    after, load the kernels from the cache."""
    if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) < 2:
        return  # one process: nothing compiles twice

    def make_the_rest() -> None:
        needed = {name for item in request.session.items
                  for name in getattr(item, "fixturenames", ())}
        for name in WHILE_COMPILING:
            if name not in needed or (name == "geolife_mini_store" and not GEOLIFE_MINI.is_file()):
                continue
            if name == "registry_template":  # not visible from here: made by its function
                from tests.serve.conftest import make_registry_template

                make_registry_template(tmp_path_factory, request.getfixturevalue("mlflow_db"))
            else:
                request.getfixturevalue(name)

    def compile_them(where: Path) -> None:
        from parkloop.facts.build import build
        from parkloop.facts.incremental import DeviceStream
        from parkloop.facts.inputs import read_device
        from parkloop.facts.rules import load_rules
        from parkloop.simulate import simulate

        rules = load_rules("v1")
        with Store.create(where / "store") as store:
            simulate(store, devices=1, days=2, seed=1)
            build(store, rules)  # the batch build, and the live pipeline's engine:
            fixes, signals = read_device(store, "sim-default-s1-0000")
        stream, half = DeviceStream("d", rules), len(fixes) // 2
        for part in (slice(0, half), slice(half, None)):
            stream.push(fixes.t_ms[part], fixes.lat[part], fixes.lon[part],
                        fixes.accuracy_m[part], fixes.altitude_m[part],
                        signals if part.start == 0 else None)
        stream.flush()

    once(tmp_path_factory, "compiled-kernels", compile_them, make_the_rest)


@pytest.fixture(scope="session")
def sim_store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small simulated store (both scenarios), made once per test run; copy it before
    writing to it."""

    def make(where: Path) -> None:
        from parkloop.simulate import simulate

        with Store.create(where / "store") as store:
            simulate(store, devices=4, days=3, seed=11)
            simulate(store, devices=2, days=3, seed=11, scenario="shifted")

    return once(tmp_path_factory, "sim", make) / "store"


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

    ours = "PYSPARK_SUBMIT_ARGS" not in os.environ  # a setting of the user's wins
    if ours:
        os.environ["PYSPARK_SUBMIT_ARGS"] = f"--driver-java-options '{SPARK_JVM}' pyspark-shell"
    try:
        with spark_session(SPARK_MASTER) as session:
            if ours:
                del os.environ["PYSPARK_SUBMIT_ARGS"]  # the JVM has started
                ours = False
            yield session
    finally:
        if ours:
            del os.environ["PYSPARK_SUBMIT_ARGS"]


@pytest.fixture(scope="session")
def geolife_mini_store(geolife_mini: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with the GeoLife sample imported, made once per test run; open it read-only
    or copy it before writing to it (tests of the import itself import afresh)."""

    def make(where: Path) -> None:
        from parkloop.raw.geolife import import_geolife

        with Store.create(where / "store") as store:
            import_geolife(store, geolife_mini)

    return once(tmp_path_factory, "geolife-mini", make) / "store"


@pytest.fixture(scope="session")
def mlflow_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow database with its tables made, once per run: MLflow's migrations
    take 10-25 s here, every time a store's registry is first used. :func:`seed_registry`
    puts a copy into a new store (the registry's own tests make theirs from nothing)."""

    def make(root: Path) -> None:
        import parkloop.interpret.registry  # noqa: F401  (MLflow's telemetry off before import)

        db = root / "mlflow.db"
        old = Path.cwd()
        os.chdir(root)  # whatever MLflow writes beside its database stays here
        try:
            from mlflow import MlflowClient

            client = MlflowClient(tracking_uri=f"sqlite:///{db}",
                                  registry_uri=f"sqlite:///{db}")
            client.search_experiments()
            client.search_registered_models()
        finally:
            os.chdir(old)

    return once(tmp_path_factory, "mlflow", make) / "mlflow.db"


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
