"""Every startup and configuration mistake a user can make is one line on stderr and exit 1,
never a traceback: bad environment values, an unreadable store, a bad loop.toml, a bad spec
or rules file — through the commands that read them. The CLI's entry point runs in this
process (fast); `parkloop serve` runs as a process of its own, since its checks must come
before the server starts (or a mistake is a worker's stack trace)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from parkloop.cli.app import main
from parkloop.store import DB_FILE, Store

Setup = Callable[[Path], dict[str, str]]
"""Breaks something in a store; returns the environment to run with."""


def _free_port() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


def short_admin_token(store: Path) -> dict[str, str]:
    return {"PARKLOOP_ADMIN_TOKEN": "123456789"}


def blank_admin_token(store: Path) -> dict[str, str]:
    return {"PARKLOOP_ADMIN_TOKEN": "   "}


def store_is_a_file(store: Path) -> dict[str, str]:
    other = store.parent / "a-file"
    other.write_text("not a store\n")
    return {"PARKLOOP_STORE": str(other)}


def database_is_garbage(store: Path) -> dict[str, str]:
    (store / DB_FILE).write_bytes(b"this is no DuckDB database\n" * 100)
    return {}


def database_is_a_directory(store: Path) -> dict[str, str]:
    (store / DB_FILE).unlink()
    (store / DB_FILE).mkdir()
    return {}


def loop_toml_not_toml(store: Path) -> dict[str, str]:
    (store / "loop.toml").write_text("[schedule\ninterval_s = 5\n")
    return {}


def loop_toml_bad_value(store: Path) -> dict[str, str]:
    (store / "loop.toml").write_text("[schedule]\ninterval_s = -5\nwindow_days = 'many'\n")
    return {}


def loop_toml_unknown_key(store: Path) -> dict[str, str]:
    (store / "loop.toml").write_text("[schedule]\nintervall_s = 5\n")
    return {}


def loop_toml_names_no_spec(store: Path) -> dict[str, str]:
    (store / "loop.toml").write_text("[schedule]\nspec = 'no-such-spec'\n")
    return {}


def spec_not_toml(store: Path) -> dict[str, str]:
    (store / "specs").mkdir()
    (store / "specs" / "parked.toml").write_text("features = [\n")
    return {}


def spec_bad_feature(store: Path) -> dict[str, str]:
    (store / "specs").mkdir()
    (store / "specs" / "parked.toml").write_text('name = "parked"\nfeatures = ["no_such"]\n')
    return {}


def loop_toml_not_utf8(store: Path) -> dict[str, str]:
    (store / "loop.toml").write_bytes(b"[schedule]\ninterval_s = 5 # \xff\xfe\n")
    return {}


def loop_toml_is_a_directory(store: Path) -> dict[str, str]:
    (store / "loop.toml").mkdir()  # unreadable as a file, even for root
    return {}


def rules_not_utf8(store: Path) -> dict[str, str]:
    (store / "rules").mkdir()
    (store / "rules" / "mine.toml").write_bytes(b"\xff\xfe")
    return {}


def rules_bad(store: Path) -> dict[str, str]:
    (store / "rules").mkdir()
    (store / "rules" / "mine.toml").write_text("[stops]\nradius_m = -1\n")
    return {}


CASES: dict[str, tuple[Setup, tuple[str, ...], str]] = {
    # name: (what breaks, the command, what the line names)
    "PARKLOOP_STORE names a file": (store_is_a_file, ("status",), "a-file"),
    "database is garbage": (database_is_garbage, ("status",), DB_FILE),
    "database is a directory": (database_is_a_directory, ("simulate", "--days", "1"),
                                DB_FILE),
    "loop.toml is not TOML": (loop_toml_not_toml, ("loop", "run"), "not valid TOML"),
    "loop.toml has bad values": (loop_toml_bad_value, ("loop", "run"), "interval_s"),
    "loop.toml has an unknown key": (loop_toml_unknown_key, ("loop", "run"), "intervall_s"),
    "loop.toml names no spec": (loop_toml_names_no_spec, ("loop", "run"), "no-such-spec"),
    "loop.toml is not UTF-8": (loop_toml_not_utf8, ("loop", "run"), "not UTF-8"),
    "loop.toml is a directory": (loop_toml_is_a_directory, ("loop", "run"), "loop.toml"),
    "spec is not TOML": (spec_not_toml, ("model", "train"), "parked.toml"),
    "spec reads no such feature": (spec_bad_feature, ("model", "train"), "no_such"),
    "rules file is bad": (rules_bad, ("facts", "build", "--rules", "mine"), "radius_m"),
    "rules file is not UTF-8": (rules_not_utf8, ("facts", "build", "--rules", "mine"),
                                "not UTF-8"),
}
SERVE_CASES: dict[str, tuple[Setup, str]] = {
    "admin token too short": (short_admin_token, "9 characters"),
    "admin token blank": (blank_admin_token, "PARKLOOP_ADMIN_TOKEN"),
    "spec reads no such feature": (spec_bad_feature, "no_such"),
}


def one_line(returncode: object, stderr: str, names: str) -> None:
    lines = stderr.strip().splitlines()
    assert returncode == 1, stderr
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert names in lines[0], stderr


@pytest.fixture
def store(tmp_path: Path) -> Path:
    path = tmp_path / "store"
    Store.create(path).close()
    return path


@pytest.mark.parametrize("case", CASES)
def test_a_mistake_is_one_line_and_exit_1(store: Path, case: str,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    setup, command, names = CASES[case]
    env = setup(store)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    store_args = () if "PARKLOOP_STORE" in env else ("--store", str(store))
    monkeypatch.setattr(sys, "argv", ["parkloop", *command, *store_args])
    with pytest.raises(SystemExit) as exited:
        main()
    one_line(exited.value.code, capsys.readouterr().err, names)


def test_serve_refuses_a_mistake_before_it_starts(tmp_path: Path) -> None:
    """`parkloop serve`, each case a process of its own (run side by side)."""
    def run(case: str) -> tuple[subprocess.CompletedProcess[str], str]:
        setup, names = SERVE_CASES[case]
        store = tmp_path / case.replace(" ", "-") / "store"
        Store.create(store).close()
        env = setup(store)
        # a server that started despite the mistake would run on: the timeout fails the test
        return subprocess.run(
            [sys.executable, "-m", "parkloop", "serve", "--port", _free_port(),
             "--loop-interval", "0", "--store", str(store)], capture_output=True, text=True,
            timeout=120, env={**os.environ, "COLUMNS": "200", **env}), names

    with ThreadPoolExecutor(len(SERVE_CASES)) as pool:
        for case, (proc, names) in zip(SERVE_CASES, pool.map(run, SERVE_CASES), strict=True):
            assert "Traceback" not in proc.stdout + proc.stderr, case
            one_line(proc.returncode, proc.stderr, names)
