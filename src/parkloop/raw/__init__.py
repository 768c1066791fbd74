"""Raw layer: the append-only log of what devices and people sent, and its quarantine."""

from parkloop.raw.events import EventBatch, parse_events
from parkloop.raw.log import StoreResult, store_batch, store_batches
from parkloop.raw.schema import KINDS, SCHEMA_VERSION
from parkloop.raw.validate import Limits

__all__ = ["KINDS", "SCHEMA_VERSION", "EventBatch", "Limits", "StoreResult", "parse_events",
           "store_batch", "store_batches"]
