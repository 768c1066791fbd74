"""``parkloop status``: what the store holds, layer by layer (a stable JSON contract)."""

from __future__ import annotations

from typing import Any

from parkloop.raw.stats import raw_counts
from parkloop.store import Store


def status(store: Store) -> dict[str, Any]:
    """The store's contents. Keys are only ever added: ``raw`` now, later layers beside it."""
    return {
        "store": str(store.path),
        "schema_version": store.schema_version,
        "raw": raw_counts(store),
    }
