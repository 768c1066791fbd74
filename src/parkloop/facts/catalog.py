"""What facts a store holds: built rules versions and the stops export."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Any

from parkloop.errors import FactsError
from parkloop.facts.rules import RulesVersion, available, load_rules

if TYPE_CHECKING:
    from parkloop.store import Store


def _any_build(store: Store) -> bool:
    return bool(store.scalar(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = 'facts_build'"))


def built_watermark(store: Store, rules_version: str) -> int | None:
    """The raw watermark the rules version's facts were built at; None where it is not
    built."""
    if not _any_build(store):
        return None
    found = store.scalar("SELECT raw_watermark FROM facts_build WHERE rules_version = ?",
                         [rules_version])
    return None if found is None else int(found)


def built_versions(store: Store) -> list[dict[str, Any]]:
    """Every rules version built in the store, with its counts; [] before the first build."""
    if not _any_build(store):
        return []
    cur = store.con.execute("""
        SELECT b.rules_version, b.rules_name, b.engine_version, b.raw_watermark, b.built_ms,
               b.seconds, b.n_devices, b.n_fixes, b.n_fixes_used, b.n_late,
               (SELECT count(*) FROM facts_stop s WHERE s.rules_version = b.rules_version)
                   AS stops,
               (SELECT count(*) FROM facts_trip s WHERE s.rules_version = b.rules_version)
                   AS trips,
               (SELECT count(*) FROM facts_leg s WHERE s.rules_version = b.rules_version)
                   AS legs,
               (SELECT count(*) FROM facts_leg_end s WHERE s.rules_version = b.rules_version)
                   AS leg_ends,
               (SELECT count(*) FROM facts_place s WHERE s.rules_version = b.rules_version)
                   AS places
        FROM facts_build b ORDER BY b.rules_name, b.rules_version""")
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def list_versions(store: Store | None, store_path: Path | None) -> list[dict[str, Any]]:
    """Every rules version that exists (shipped or in the store's rules/ folder) and, where
    built, what its build holds."""
    built = {b["rules_name"]: b for b in built_versions(store)} if store else {}
    out = []
    for name in available(store_path):
        rules = load_rules(name, store_path)
        entry: dict[str, Any] = {"name": name, "identity": rules.identity,
                                 "description": rules.params.description,
                                 "source": str(rules.source)}
        b = built.get(name)
        entry["built"] = b is not None and b["rules_version"] == rules.identity
        if b is not None:
            entry["build"] = b
        out.append(entry)
    return out


def export_stops(store: Store, rules: RulesVersion, out: Path) -> int:
    """Write the version's stops as CSV (device_id, started_at, finished_at, lat, lon,
    n_fixes, rules_version; times UTC ISO 8601); return the row count."""
    built = [b for b in built_versions(store) if b["rules_version"] == rules.identity]
    if not built:
        raise FactsError(f"rules version {rules.identity} is not built in this store; run "
                         f"`parkloop facts build --rules {rules.name}` first")
    rows = store.con.execute("""
        SELECT device_id,
               strftime(make_timestamp(started_ms * 1000), '%Y-%m-%dT%H:%M:%S.%gZ'),
               strftime(make_timestamp(finished_ms * 1000), '%Y-%m-%dT%H:%M:%S.%gZ'),
               lat, lon, n_fixes, rules_version
        FROM facts_stop WHERE rules_version = ? ORDER BY device_id, started_ms""",
        [rules.identity]).fetchall()
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "started_at", "finished_at", "lat", "lon", "n_fixes",
                    "rules_version"])
        w.writerows(rows)
    return len(rows)
