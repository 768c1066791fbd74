"""``parkloop status``: what the store holds, layer by layer (a stable JSON contract)."""

from __future__ import annotations

from typing import Any

from parkloop.errors import RegistryError
from parkloop.facts.catalog import built_versions
from parkloop.interpret.registry import Registry
from parkloop.raw.stats import raw_counts
from parkloop.store import Store


def status(store: Store) -> dict[str, Any]:
    """The store's contents. Keys are only ever added: ``raw``, ``facts``, ``models``, ..."""
    return {
        "store": str(store.path),
        "schema_version": store.schema_version,
        "raw": raw_counts(store),
        "facts": {b["rules_version"]: {
            k: b[k] for k in ("stops", "trips", "legs", "leg_ends", "places", "n_devices",
                              "raw_watermark", "built_ms")} for b in built_versions(store)},
        "models": models(store),
    }


def models(store: Store) -> dict[str, Any]:
    """``{"champion": VERSION or None, "versions": N}`` from the registry, never from DuckDB
    (a broken registry adds ``"error"`` rather than hiding the rest of the status)."""
    try:
        return Registry(store.path).summary()
    except RegistryError as exc:
        return {"champion": None, "versions": None, "error": str(exc)}
