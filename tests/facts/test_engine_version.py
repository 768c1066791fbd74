"""A change of any step's output must come with a new ENGINE_VERSION (part of every rules
identity), or facts built before and after would carry the same identity.

Floats are rounded to 6 decimals before hashing: the last bit of sin/cos may differ between
CPUs, a change of the engine does not hide in it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from parkloop.facts import rules as R
from parkloop.facts.build import read_device
from parkloop.facts.pipeline import device_facts
from parkloop.facts.tables import table_digest
from parkloop.store import Store

GOLDEN = Path(__file__).with_name("engine_golden.json")


def facts_digest(store: Store) -> str:
    h = hashlib.sha256()
    for rules_name in ("v1", "trackintel-sliding"):
        rules = R.load_rules(rules_name)
        for device in ("geolife-000", "geolife-021"):
            fixes, signals = read_device(store, device)
            facts = device_facts(device, fixes, signals, rules).tables
            for name, table in sorted(facts.items()):
                rounded = pa.table({c: pc.round(table.column(c), 6)
                                    if pa.types.is_floating(table.column(c).type)
                                    else table.column(c) for c in table.column_names})
                h.update(f"{rules_name}/{device}/{name}:{table_digest(rounded)}".encode())
    return h.hexdigest()


def test_engine_output_is_pinned_to_its_version(geolife_mini_store: Path) -> None:
    with Store.open(geolife_mini_store, read_only=True) as store:
        digest = facts_digest(store)
    golden = json.loads(GOLDEN.read_text())
    assert golden["engine_version"] == R.ENGINE_VERSION, (
        f"ENGINE_VERSION is {R.ENGINE_VERSION!r}: record its output in {GOLDEN.name}: "
        f'{{"engine_version": "{R.ENGINE_VERSION}", "digest": "{digest}"}}')
    assert digest == golden["digest"], (
        "the facts engine's output changed: bump ENGINE_VERSION in facts/rules.py and record "
        f'{{"engine_version": "<new>", "digest": "{digest}"}} in {GOLDEN.name}')
