"""The public surface each layer documents is the one it exports."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize(("module", "names"), [
    ("parkloop", {"ParkloopError", "Store", "__version__"}),
    ("parkloop.raw", {"EventBatch", "Limits", "StoreResult", "parse_events", "store_batch",
                      "store_batches", "KINDS", "SCHEMA_VERSION"}),
    ("parkloop.facts", {"build", "DeviceStream", "device_facts", "load_rules", "RulesVersion",
                        "ENGINE_VERSION", "DEFAULT_RULES", "available"}),
    ("parkloop.simulate", {"SCENARIOS", "SimulationSummary", "simulate"}),
])
def test_layers_export_what_they_document(module: str, names: set[str]) -> None:
    mod = importlib.import_module(module)
    assert names <= set(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), f"{module}.{name} is listed but missing"
    assert mod.__doc__
    assert len(mod.__doc__.strip().splitlines()[0]) < 100
