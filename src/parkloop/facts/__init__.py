"""Facts: versioned, deterministic stops, trips, legs, leg ends, places and features."""

from parkloop.config import DEFAULT_RULES
from parkloop.facts.build import BuildReport, build
from parkloop.facts.incremental import DeviceStream, Update
from parkloop.facts.pipeline import DeviceFacts, Fixes, device_facts
from parkloop.facts.rules import ENGINE_VERSION, RulesVersion, available, load_rules

__all__ = ["DEFAULT_RULES", "ENGINE_VERSION", "BuildReport", "DeviceFacts", "DeviceStream",
           "Fixes", "RulesVersion", "Update", "available", "build", "device_facts",
           "load_rules"]
