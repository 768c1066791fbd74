"""Incremental facts equal batch facts, for any chunking and any arrival order within the
allowed lateness (DESIGN.md: facts are reproducible)."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parkloop.facts.build import read_device
from parkloop.facts.features import Signals
from parkloop.facts.incremental import KEY, DeviceStream, Update, _rows
from parkloop.facts.pipeline import Fixes, device_facts
from parkloop.facts.rules import RulesVersion, load_rules
from parkloop.facts.tables import SCHEMAS, table_digest
from parkloop.store import Store


def stream(device: str, fixes: Fixes, signals: Signals, rules: RulesVersion,
           rng: np.random.Generator, lateness_share: float, max_chunk: int
           ) -> tuple[dict[str, pa.Table], DeviceStream]:
    """Feed a device's events (fixes, signals, statements) in a shuffled order (each event
    delayed by up to ``lateness_share`` of the allowed lateness) and random chunks; collect
    final facts."""
    lateness = rules.params.order.allowed_lateness_s * 1000
    arrive = fixes.t_ms + rng.uniform(0, lateness * lateness_share, len(fixes))
    order = np.argsort(arrive, kind="stable")
    link_at = signals.link_ms + rng.uniform(0, lateness * lateness_share, len(signals.link_ms))
    act_at = signals.activity_ms + rng.uniform(0, lateness * lateness_share,
                                               len(signals.activity_ms))
    said = signals.statements  # said when they were said, arriving like everything else
    said_at = said.said_ms + rng.uniform(0, lateness * lateness_share, len(said))
    s = DeviceStream(device, rules)
    got: dict[str, list[pa.Table]] = {k: [] for k in KEY}
    i = 0
    while i < len(order):
        idx = order[i:i + int(rng.integers(1, max_chunk + 1))]
        i += len(idx)
        upto = arrive[idx].max() if i < len(order) else np.inf
        lo = arrive[order[i - len(idx) - 1]] if i - len(idx) > 0 else -np.inf
        li = (link_at > lo) & (link_at <= upto)
        ai = (act_at > lo) & (act_at <= upto)
        sig = Signals(signals.link_ms[li], signals.link_connected[li],
                      signals.activity_ms[ai], signals.activity_on_foot[ai],
                      said.take((said_at > lo) & (said_at <= upto)))
        update = s.push(fixes.t_ms[idx], fixes.lat[idx], fixes.lon[idx], fixes.accuracy_m[idx],
                        fixes.altitude_m[idx], sig)
        for k in got:
            got[k].append(update.final[k])
    final = s.flush().final
    return {k: pa.concat_tables([*v, final[k]]) for k, v in got.items()}, s


def assert_same(got: dict[str, pa.Table], s: DeviceStream, batch: dict[str, pa.Table]) -> None:
    for name, table in got.items():
        assert table_digest(table) == table_digest(batch[name]), name
    assert table_digest(s.places()) == table_digest(batch["facts_place"])


@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=st.integers(0, 5), seed=st.integers(0, 2**32 - 1),
       share=st.sampled_from([0.0, 0.3, 0.99]), max_chunk=st.sampled_from([5, 60, 800]))
def test_simulated_streams(sim_store: Store, device: int, seed: int, share: float,
                           max_chunk: int) -> None:
    rules = load_rules("v1")
    name = sim_store.con.execute("SELECT DISTINCT device_id FROM raw_fix ORDER BY 1"
                                 ).fetchall()[device][0]
    fixes, signals = read_device(sim_store, name)
    batch = device_facts(name, fixes, signals, rules).tables
    got, s = stream(name, fixes, signals, rules, np.random.default_rng(seed), share, max_chunk)
    assert sum(t.num_rows for t in got.values()) > 0
    assert_same(got, s, batch)


def test_late_fixes_are_ignored_the_same_way(sim_store: Store) -> None:
    """Beyond the allowed lateness, the batch build and the stream drop the same fixes."""
    rules = load_rules("v1")
    name = "sim-default-s11-0000"
    fixes, signals = read_device(sim_store, name)
    rng = np.random.default_rng(5)
    arrival = np.argsort(fixes.t_ms + rng.uniform(0, 3 * 6 * 3600e3, len(fixes)))
    shuffled = fixes.take(arrival)
    shuffled = Fixes(shuffled.t_ms, shuffled.lat, shuffled.lon, shuffled.accuracy_m,
                     shuffled.altitude_m, np.arange(len(fixes)))
    batch = device_facts(name, shuffled, signals, rules)
    assert batch.n_late > 0
    s = DeviceStream(name, rules)
    got: dict[str, list[pa.Table]] = {k: [] for k in KEY}
    for i in range(0, len(fixes), 97):
        sl = slice(i, i + 97)
        u = s.push(shuffled.t_ms[sl], shuffled.lat[sl], shuffled.lon[sl],
                   shuffled.accuracy_m[sl], shuffled.altitude_m[sl],
                   signals if i == 0 else None)
        for k in got:
            got[k].append(u.final[k])
    final = s.flush().final
    assert s.late == batch.n_late
    assert_same({k: pa.concat_tables([*v, final[k]]) for k, v in got.items()}, s,
                batch.tables)


def test_open_facts_are_provisional_until_they_close(sim_store: Store) -> None:
    rules = load_rules("v1")
    fixes, signals = read_device(sim_store, "sim-default-s11-0001")
    s = DeviceStream("d", rules)
    half = len(fixes) // 2
    u = s.push(fixes.t_ms[:half], fixes.lat[:half], fixes.lon[:half],
               fixes.accuracy_m[:half], fixes.altitude_m[:half], signals)
    newest = int(fixes.t_ms[:half].max())
    for name, table in u.final.items():
        ends = np.asarray(table.column("decided_ms" if name == "facts_leg_end" else
                                       "finished_ms"))
        assert (ends <= newest).all(), name  # nothing final that data could still change
    assert sum(t.num_rows for t in u.provisional.values()) > 0


@pytest.fixture(scope="module")
def geolife_store(geolife_mini_store: Path) -> Path:
    return geolife_mini_store


@settings(max_examples=4, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(person=st.sampled_from(["geolife-000", "geolife-021", "geolife-076"]),
       seed=st.integers(0, 2**32 - 1))
def test_geolife_streams(geolife_store: Path, person: str, seed: int) -> None:
    rules = load_rules("v1")
    with Store.open(geolife_store, read_only=True) as store:
        fixes, signals = read_device(store, person)
    batch = device_facts(person, fixes, signals, rules).tables
    got, s = stream(person, fixes, signals, rules, np.random.default_rng(seed), 0.5, 2000)
    assert got["facts_leg_end"].num_rows > 0
    assert_same(got, s, batch)


@settings(max_examples=30)
@given(mask=st.lists(st.booleans(), min_size=0, max_size=12))
def test_rows_of_a_push_are_the_rows_the_mask_selects(mask: list[bool]) -> None:
    """A push hands out slices where the rows are one run, else a copy: the same rows as a
    filter either way."""
    n = len(mask)
    schema = SCHEMAS["facts_stop"]
    table = pa.table({f.name: pa.array([f"d{i}" if pa.types.is_string(f.type) else i
                                        for i in range(n)], f.type) for f in schema},
                     schema=schema)
    got = _rows("facts_stop", table, np.array(mask, dtype=bool))
    assert got.schema == schema
    assert table_digest(got) == table_digest(table.filter(pa.array(mask, pa.bool_())))


def same_rows(update: Update, so_far: dict[str, pa.Table]) -> None:
    """A push's final and open rows are the rows the batch build has under those keys."""
    for k in KEY:
        rows = pa.concat_tables([update.final[k], update.provisional[k]])
        keys = pa.array(rows.column(KEY[k]))
        same = so_far[k].filter(pc.is_in(so_far[k].column(KEY[k]), keys))
        assert table_digest(rows) == table_digest(same), k


def test_fixes_in_order_rerun_from_the_soft_restart_point_with_the_same_rows(
        sim_store: Store) -> None:
    """Fixes arriving in order (the common case) let a push rerun the steps from a later
    stop than the restart point (the soft restart point): every push's final and open rows
    are still the rows a batch build of the fixes so far has under the same keys, also when
    a fix from before that point arrives after all."""
    rules = load_rules("v1")
    name = "sim-default-s11-0000"
    fixes, signals = read_device(sim_store, name)
    lateness = int(rules.params.order.allowed_lateness_s * 1000)
    s = DeviceStream(name, rules)
    soft = late_checks = 0
    step = 37
    for i in range(0, len(fixes), step):
        sl = slice(i, i + step)
        u = s.push(fixes.t_ms[sl], fixes.lat[sl], fixes.lon[sl], fixes.accuracy_m[sl],
                   fixes.altitude_m[sl], signals if i == 0 else None)
        so_far = fixes.take(np.arange(min(i + step, len(fixes))))
        if i % (5 * step) == 0:
            same_rows(u, device_facts(name, so_far, signals, rules).tables)
        if s._soft is None:
            continue
        soft += 1
        old = s._soft.start - 60_000  # before the soft restart point
        if old < int(so_far.t_ms.max()) - lateness + 60_000 or old in set(so_far.t_ms.tolist()):
            continue  # it would be late (or is there already)
        other = copy.deepcopy(s)  # a fix from before it arrives after all
        lat, lon = so_far.lat[-1] + 0.002, so_far.lon[-1]
        u = other.push(np.array([old]), np.array([lat]), np.array([lon]))
        assert other.late == 0
        both = Fixes(*(np.append(a, v) for a, v in zip(
            (so_far.t_ms, so_far.lat, so_far.lon, so_far.accuracy_m, so_far.altitude_m,
             so_far.arrival), (old, lat, lon, np.nan, np.nan, len(so_far)), strict=True)))
        same_rows(u, device_facts(name, both, signals, rules).tables)
        late_checks += 1
    assert soft > len(fixes) // step // 2  # it was there most of the time
    assert late_checks > 3
