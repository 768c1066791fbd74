"""``parkloop serve`` as an operator meets it: a store with no model yet, a busy port, a store
another server holds."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parkloop.facts.rules import load_rules
from tests.conftest import run_cli
from tests.serve.conftest import Server, free_port
from tests.test_cli import one_line_error

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def bare(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``parkloop serve`` on a directory that holds no store yet (one server for the module:
    each start costs seconds)."""
    server = Server(tmp_path_factory.mktemp("bare") / "new-store").wait_ready()
    try:
        yield server
    finally:
        server.stop()


def test_a_store_without_a_model_serves_unknown_answers(bare: Server) -> None:
    assert (bare.store / "parkloop.duckdb").is_file()  # the store is created, and it says so
    assert f"created an empty store at {bare.store}" in bare.output()
    auth = bare.token("phone-1")
    r = httpx.post(f"{bare.url}/v1/devices/phone-1/events", headers=auth, timeout=10,
                   json={"batch_id": "b1", "events": [
                       {"kind": "fix", "t": 1_767_600_000_000, "lat": 48.1, "lon": 11.5}]})
    assert r.status_code == 200, r.text
    bare.wait_caught_up()
    answer = httpx.get(f"{bare.url}/v1/devices/phone-1/car", headers=auth, timeout=10).json()
    assert (answer["status"], answer["model_version"], answer["reason"]) == (
        "unknown", None, "no model is published yet")
    assert answer["rules_version"] == load_rules("v1").identity


def test_a_busy_port_or_a_held_store_is_one_line(bare: Server, tmp_path: Path) -> None:
    busy = run_cli("serve", "--port", str(bare.port), store=tmp_path / "other", check=False)
    assert "another program is using it" in one_line_error(busy)
    held = run_cli("serve", "--port", str(free_port()), store=bare.store, check=False)
    assert "in use by another parkloop process" in one_line_error(held)
