"""The facts' digest the golden check and the CPU check compare.

It builds a store's facts for both shipped rules versions with the real build and hashes each
table's values canonically (:func:`~parkloop.facts.tables.table_digest`: every bit of every
value, no rounding, nothing of Arrow's byte layout). Run as a module,
``python -m tests.facts.facts_digest ZIP``, it imports a GeoLife zip into a temporary store and
prints the digest, so that a test can build the same facts under other CPU settings.
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
from pathlib import Path

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.facts.tables import SCHEMAS, TIME_KEY, table_digest
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

RULES = ("v1", "trackintel-sliding")


def facts_digest(store: Store) -> str:
    """Build both shipped rules versions' facts and hash every table, value by value."""
    h = hashlib.sha256()
    for name in RULES:
        rules = load_rules(name)
        build(store, rules)
        for table in sorted(SCHEMAS):
            rows = store.con.sql(
                f"SELECT * EXCLUDE (rules_version) FROM {table} WHERE rules_version = ? "
                f"ORDER BY device_id, {TIME_KEY[table]}", params=[rules.identity])
            h.update(f"{name}/{table}:{table_digest(rows.to_arrow_table())}\n".encode())
    return h.hexdigest()


def zip_digest(zip_path: Path) -> str:
    """Import a GeoLife zip into a temporary store and return its facts' digest."""
    with tempfile.TemporaryDirectory() as tmp, Store.create(Path(tmp) / "store") as store:
        import_geolife(store, zip_path)
        return facts_digest(store)


if __name__ == "__main__":
    print(zip_digest(Path(sys.argv[1])))
