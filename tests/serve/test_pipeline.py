"""The live pipeline in worker processes, without HTTP: the shard map, the reads the workers
get, and that N workers answer exactly as one pipeline does, through a worker's death and a
new champion."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parkloop.facts.inputs import merge_reads, read_batches
from parkloop.facts.rules import load_rules
from parkloop.serve.live import Live, ServedModel
from parkloop.serve.pipeline import Pipeline
from parkloop.serve.shards import SHARDS, owned_sql, shard_of, shard_sql, worker_of
from parkloop.store import Store
from tests.serve.conftest import rule_model

RULES = load_rules("v1")


@settings(max_examples=200, deadline=None)
@given(device_id=st.text(min_size=1, max_size=40))
def test_a_device_has_the_same_shard_in_python_and_in_sql(device_id: str) -> None:
    got = duckdb.execute(f"SELECT {shard_sql('?')}", [device_id]).fetchone()
    assert got is not None
    assert got[0] == shard_of(device_id)
    assert 0 <= shard_of(device_id) < SHARDS


def test_workers_split_devices_without_overlap() -> None:
    devices = [f"phone-{i}" for i in range(400)]
    owners = [worker_of(d, 3) for d in devices]
    assert sorted(set(owners)) == [0, 1, 2]
    assert min(owners.count(k) for k in range(3)) > 100  # roughly even
    with pytest.raises(ValueError, match="worker 3 of 3"):
        owned_sql(3, 3)


@pytest.fixture(scope="module")
def store(sim_store_path: Path) -> Iterator[Store]:
    with Store.open(sim_store_path, read_only=True) as s:
        yield s


def _arrays(read: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, list[np.ndarray]]:
    fixes, signals = read
    out = {f"fix/{d}": [f.t_ms, f.lat, f.lon, f.accuracy_m, f.altitude_m, f.arrival]
           for d, f in fixes.items()}
    out |= {f"sig/{d}": [s.link_ms, s.link_connected, s.activity_ms, s.activity_on_foot,
                         s.statements.said_ms, s.statements.about_ms, s.statements.car]
            for d, s in signals.items()}
    return out


@settings(max_examples=5, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.floats(0.01, 0.99))
def test_two_reads_merged_are_one_read(store: Store, cut: float) -> None:
    last = int(store.scalar("SELECT max(batch_no) FROM raw_batch"))
    mid = int(cut * last)
    merged = _arrays(merge_reads(read_batches(store.con, 0, mid),
                                 read_batches(store.con, mid, last)))
    whole = _arrays(read_batches(store.con, 0, last))
    assert merged.keys() == whole.keys()
    for key, arrays in whole.items():
        for a, b in zip(merged[key], arrays, strict=True):
            np.testing.assert_array_equal(a, b, err_msg=key)


def _without_time_known(answers: dict[str, bytes]) -> dict[str, Any]:
    """Answers without ``known_since`` (the wall-clock moment each was made)."""
    return {d: {k: v for k, v in orjson.loads(b).items() if k != "known_since"}
            for d, b in answers.items()}


def _wait(what: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


@pytest.mark.parametrize("workers", [0, 2], ids=["thread", "2-processes"])
def test_n_workers_answer_as_one_pipeline_through_a_death_and_a_publish(
        store: Store, tmp_path: Path, workers: int) -> None:
    last = int(store.scalar("SELECT max(batch_no) FROM raw_batch"))
    one = Live(RULES, ServedModel("7", rule_model(10.0)))
    one.catch_up(store.con, upto=last)
    expected = _without_time_known(one.answers)
    rule_model(10.0).save(tmp_path / "m7")
    rule_model(30.0).save(tmp_path / "m8")
    pipeline = Pipeline(store.path, RULES, ServedModel("7", rule_model(10.0)), tmp_path / "m7",
                        workers=workers, cursor=store.con.cursor, committed=lambda: last)
    pipeline.start()
    try:
        _wait(lambda: pipeline.ready)
        assert pipeline.watermark == last
        assert _without_time_known(pipeline.answers) == expected
        device = sorted(expected)[0]
        view = pipeline.view(device).result(timeout=30)
        assert view is not None
        assert view.final["facts_stop"].equals(one.view(device).final["facts_stop"])
        assert pipeline.judged(device).result(timeout=30) == one.judged(device)

        if workers:  # kill -9 one worker: it comes back, replays, and its devices answer
            victim = pipeline.status()[1]
            assert victim.pid is not None
            assert victim.state == "serving"
            mine = [d for d in expected if worker_of(d, workers) == 1]
            assert mine
            assert len(mine) < len(expected)
            os.kill(victim.pid, signal.SIGKILL)
            _wait(lambda: pipeline.status()[1].restarts == 1)
            assert all(d in pipeline.answers for d in mine)  # served meanwhile
            _wait(lambda: pipeline.status()[1].state == "serving")
            assert pipeline.status()[1].pid != victim.pid
            assert _without_time_known(pipeline.answers) == expected

        pipeline.use(ServedModel("8", rule_model(30.0)), tmp_path / "m8")
        _wait(lambda: pipeline.model_version == "8")
        one.use(ServedModel("8", rule_model(30.0)))
        assert _without_time_known(pipeline.answers) == _without_time_known(one.answers)
        assert {a["model_version"] for a in _without_time_known(pipeline.answers).values()} \
            == {"8"}
    finally:
        pipeline.close()
    assert all(s.pid is None or not _alive(s.pid) for s in pipeline.status())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
