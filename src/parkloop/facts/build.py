"""``parkloop facts build``: every device's facts under one rules version, in batch.

Devices are read from the raw layer one at a time (memory is bounded by the largest device,
not the store) through :mod:`~parkloop.facts.inputs` (``read_device`` is re-exported here), run
through :func:`~parkloop.facts.pipeline.device_facts`, and the version's
facts replace its previous build in one transaction; other versions stay as they are.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from parkloop.facts import tables
from parkloop.facts.inputs import raw_watermark, read_device
from parkloop.facts.pipeline import DeviceFacts, device_facts
from parkloop.facts.rules import ENGINE_VERSION, RulesVersion

if TYPE_CHECKING:
    from parkloop.store import Store


@dataclass(frozen=True)
class BuildReport:
    """What a build made."""

    rules_version: str
    devices: int
    fixes: int
    fixes_used: int
    late: int
    rows: dict[str, int]
    seconds: float
    engine: str = "duckdb"

    def describe(self) -> str:
        rows = ", ".join(f"{n:,} {k.removeprefix('facts_')}s" for k, n in self.rows.items())
        on = "" if self.engine == "duckdb" else f" on {self.engine}"
        return (f"built {self.rules_version}{on} for {self.devices} devices in "
                f"{self.seconds:.1f} s:"
                f" {rows}\nfrom {self.fixes:,} fixes ({self.fixes_used:,} used after dedup and"
                f" cleaning, {self.late:,} late)")


def ensure_tables(store: Store) -> None:
    """Create the fact tables; facts are derived data, so tables of an older layout are
    dropped and rebuilt rather than migrated (raw tables are never touched)."""
    layout = tables.layout_digest()
    if store.scalar("SELECT value FROM meta WHERE key = 'facts_layout'") != layout:
        for name in [*tables.SCHEMAS, "facts_build"]:
            store.con.execute(f"DROP TABLE IF EXISTS {name}")
        store.con.execute("INSERT OR REPLACE INTO meta VALUES ('facts_layout', ?)", [layout])
    for stmt in tables.ddl():
        store.con.execute(stmt)


def build(store: Store, rules: RulesVersion, *, threads: int = 2,
          on_device: Callable[[], None] | None = None) -> BuildReport:
    """Build ``rules``' facts for every device in the store, replacing that version's old
    facts atomically."""
    start = time.perf_counter()
    devices = [d for (d,) in store.con.execute(
        "SELECT DISTINCT device_id FROM raw_fix ORDER BY device_id").fetchall()]
    watermark = raw_watermark(store.con)
    local = threading.local()

    def one(device: str) -> tuple[int, DeviceFacts]:
        if not hasattr(local, "con"):
            local.con = store.con.cursor()
        fixes, signals = read_device(store, device, local.con)
        return len(fixes), device_facts(device, fixes, signals, rules)

    # devices are independent: two at a time keeps both cores busy (the kernels drop the GIL)
    results = []
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for n, facts in pool.map(one, devices):
            results.append((n, facts))
            if on_device:
                on_device()
    return write_facts(store, rules, results, watermark=watermark, started=start,
                       engine="duckdb")


def write_facts(store: Store, rules: RulesVersion, results: list[tuple[int, DeviceFacts]], *,
                watermark: int, started: float, engine: str) -> BuildReport:
    """Replace ``rules``' facts with the devices' ``results`` (fixes read, facts), in device
    order, in one transaction; every engine writes through here, so equal inputs give
    byte-equal tables."""
    parts: dict[str, list[pa.Table]] = {name: [] for name in tables.SCHEMAS}
    n_fixes = n_used = n_late = 0
    for n, facts in results:
        for name, table in facts.tables.items():
            parts[name].append(table)
        n_fixes += n
        n_used += facts.n_used
        n_late += facts.n_late
    con = store.con
    con.execute("BEGIN")
    try:
        ensure_tables(store)
        rows = {}
        for name, schema in tables.SCHEMAS.items():
            con.execute(f"DELETE FROM {name} WHERE rules_version = ?", [rules.identity])
            table = pa.concat_tables(parts[name]) if parts[name] else schema.empty_table()
            rows[name] = table.num_rows
            con.register("_facts", table)
            con.execute(f"INSERT INTO {name} SELECT * FROM _facts")
            con.unregister("_facts")
        seconds = time.perf_counter() - started
        con.execute("DELETE FROM facts_build WHERE rules_version = ?", [rules.identity])
        con.execute("INSERT INTO facts_build VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            rules.identity, rules.name, json.dumps(rules.params.model_dump(), sort_keys=True),
            ENGINE_VERSION, watermark, int(time.time() * 1000), seconds, len(results),
            n_fixes, n_used, n_late])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return BuildReport(rules.identity, len(results), n_fixes, n_used, n_late, rows, seconds,
                       engine)


__all__ = ["BuildReport", "build", "ensure_tables", "read_device", "write_facts"]
