"""The raw log: idempotent per (device_id, batch_id), append-only, nothing sent is lost."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parkloop.errors import BatchConflict
from parkloop.raw.events import EventBatch, parse_events
from parkloop.raw.log import store_batch, store_batches
from parkloop.raw.schema import KINDS
from parkloop.raw.validate import Limits
from parkloop.store import Store

NOW = 1_767_600_000_000


def fix(i: int, lat: float = 52.5) -> dict[str, object]:
    return {"kind": "fix", "t": NOW - 1000 * i, "lat": lat, "lon": 13.4}


def snapshot(store: Store) -> dict[str, list[tuple[object, ...]]]:
    tables = ["raw_batch", "quarantine", *(k.table for k in KINDS)]
    return {t: store.con.execute(
        f"SELECT * EXCLUDE (received_ms) FROM {t} ORDER BY ALL" if t == "raw_batch"
        else f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in tables}


def test_good_events_are_stored_and_bad_ones_quarantined(store: Store) -> None:
    batch = parse_events("phone-1", "b1", [
        fix(0), {"kind": "fix", "t": NOW, "lat": 123.0, "lon": 13.4}, {"kind": "nope"},
        {"kind": "activity", "t": NOW, "activity": "still"}, fix(1, lat="x")])  # type: ignore[arg-type]
    result = store_batch(store, batch, received_ms=NOW)
    assert (result.status, result.n_events, result.n_stored, result.n_quarantined) == (
        "stored", 5, 2, 3)
    assert result.reasons == {"lat_out_of_range": 1, "unknown_kind": 1, "wrong_type": 1}
    q = store.con.execute(
        "SELECT seq, kind, reason, device_id FROM quarantine ORDER BY seq").fetchall()
    assert q == [(1, "fix", "lat_out_of_range", "phone-1"), (2, "nope", "unknown_kind", "phone-1"),
                 (4, "fix", "wrong_type", "phone-1")]
    assert store.scalar("SELECT count(*) FROM raw_fix") == 1
    assert store.scalar("SELECT count(*) FROM raw_activity") == 1


def test_retry_is_stored_once_and_changes_nothing(store: Store) -> None:
    batch = parse_events("phone-1", "b1", [fix(0), fix(1, lat=200)])
    first = store_batch(store, batch, received_ms=NOW)
    before = snapshot(store)
    again = store_batch(store, parse_events("phone-1", "b1", [fix(0), fix(1, lat=200)]))
    assert again.status == "duplicate"
    assert (again.batch_no, again.n_stored, again.n_quarantined) == (first.batch_no, 1, 1)
    assert snapshot(store) == before


def test_reused_id_with_other_content_is_refused(store: Store) -> None:
    store_batch(store, parse_events("phone-1", "b1", [fix(0)]), received_ms=NOW)
    before = snapshot(store)
    with pytest.raises(BatchConflict, match="already stored with different content"):
        store_batch(store, parse_events("phone-1", "b1", [fix(0), fix(1)]))
    assert snapshot(store) == before
    # the same id on another device is another batch
    assert store_batch(store, parse_events("phone-2", "b1", [fix(0)]),
                       received_ms=NOW).status == "stored"


def test_oversized_batch_is_quarantined_whole(store: Store) -> None:
    batch = parse_events("p", "big", [fix(i) for i in range(11)] + [{"kind": "?"}])
    result = store_batch(store, batch, limits=Limits(max_batch_events=10), received_ms=NOW)
    assert (result.n_stored, result.n_quarantined) == (0, 12)
    assert store.scalar(
        "SELECT count(*) FROM quarantine WHERE reason LIKE 'batch_too_large%'") == 12


def test_a_call_with_the_same_batch_twice_stores_it_once(store: Store) -> None:
    b = parse_events("p", "b", [fix(0)])
    results = store_batches(store, [b, parse_events("p", "b", [fix(0)]),
                                    parse_events("p", "b", [fix(1)])], received_ms=NOW)
    assert [r.status for r in results] == ["stored", "duplicate", "conflict"]
    assert results[1].batch_no == results[0].batch_no
    assert store.scalar("SELECT count(*) FROM raw_fix") == 1


event = st.one_of(
    st.builds(lambda i, lat: {"kind": "fix", "t": NOW - i, "lat": lat, "lon": 1.0},
              st.integers(0, 10**9), st.floats(-100, 100)),
    st.builds(lambda a: {"kind": "activity", "t": NOW, "activity": a},
              st.sampled_from(["still", "in_vehicle", "flying"])),
    st.just({"kind": "bogus"}),
    st.just({"kind": "fix", "t": "noon", "lat": 1, "lon": 1}),
)
batch_specs = st.lists(st.tuples(st.sampled_from(["p1", "p2"]), st.integers(0, 4),
                                 st.lists(event, max_size=8)), min_size=1, max_size=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batch_specs, st.integers(1, 4))
def test_any_sequence_with_retries_stores_each_batch_once(
        tmp_path_factory: pytest.TempPathFactory,
        specs: list[tuple[str, int, list[dict[str, object]]]], chunk: int) -> None:
    """Idempotence and conservation: sending batches (with retries, in chunks) leaves each
    (device, batch id) stored once with its first content, and every event it had either
    stored or quarantined, exactly once."""
    path: Path = tmp_path_factory.mktemp("s")
    first: dict[tuple[str, str], list[dict[str, object]]] = {}
    with Store.create(path) as store:
        batches = [parse_events(dev, f"b{n}", evs) for dev, n, evs in specs]
        for i in range(0, len(batches), chunk):
            store_batches(store, batches[i:i + chunk], received_ms=NOW)
        store_batches(store, batches, received_ms=NOW)  # everything retried
        for dev, n, evs in specs:
            first.setdefault((dev, f"b{n}"), evs)
        rows = store.con.execute("SELECT device_id, batch_id, batch_no, n_events FROM raw_batch"
                                 ).fetchall()
        assert sorted((d, b) for d, b, _, _ in rows) == sorted(first)
        for dev, bid, no, n_events in rows:
            assert n_events == len(first[(dev, bid)])
            seqs = [s for k in KINDS for (s,) in store.con.execute(
                f"SELECT seq FROM {k.table} WHERE batch_no = ?", [no]).fetchall()]
            seqs += [s for (s,) in store.con.execute(
                "SELECT seq FROM quarantine WHERE batch_no = ?", [no]).fetchall()]
            assert sorted(seqs) == list(range(n_events))


def test_no_code_path_updates_or_deletes_raw_rows() -> None:
    """Raw is append-only: no statement in the package may UPDATE or DELETE raw tables."""
    src = Path(__file__).resolve().parents[2] / "src" / "parkloop"
    tables = "|".join(["raw_batch", "quarantine", *(k.table for k in KINDS)])
    pattern = re.compile(rf"(UPDATE\s+({tables})\b|DELETE\s+FROM\s+({tables})\b|"
                         rf"TRUNCATE\s+({tables})\b|DROP\s+TABLE\s+(IF\s+EXISTS\s+)?({tables})\b)",
                         re.IGNORECASE)
    offenders = [f"{p}: {m.group(0)}" for p in src.rglob("*.py")
                 for m in pattern.finditer(p.read_text())]
    assert offenders == []


def test_store_keeps_batches_apart_from_their_events(store: Store) -> None:
    b = EventBatch.of("p", "b", "simulator", {"fix": {
        "seq": [0, 1], "t_ms": [NOW, NOW + 1000], "lat": [1.0, 2.0], "lon": [3.0, 4.0]}})
    r = store_batch(store, b, received_ms=NOW)
    assert store.con.execute("SELECT device_id, batch_no, seq, lat FROM raw_fix ORDER BY seq"
                             ).fetchall() == [("p", r.batch_no, 0, 1.0), ("p", r.batch_no, 1, 2.0)]
    assert store.scalar("SELECT source FROM raw_batch") == "simulator"
