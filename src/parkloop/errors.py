"""One error tree for parkloop; the CLI and the HTTP layer map it to messages in one place each.

    ParkloopError
    ├── StoreError                  the store directory or its database
    │   ├── StoreNotFound           no store where one was expected
    │   ├── StoreLocked             another process holds the store's write lock
    │   ├── StoreFull               the store's disk is full: nothing of the write was stored
    │   └── StoreVersionError       the store was written by an incompatible schema version
    ├── RejectedInput               input refused as a whole (one-line reason for the caller)
    │   ├── InvalidBatch            a batch that cannot even be keyed (bad device or batch id)
    │   ├── BatchConflict           a different batch under a (device_id, batch_id) already stored
    │   ├── SourceError             an import source that cannot be read at all
    │   └── DeviceAlreadyRegistered a device registered twice (issue a new token instead)
    ├── FactsError                  rules versions and the facts engine
    ├── ModelError                  model specs, training and scoring
    ├── RegistryError               model registry
    │   └── UnknownModelVersion     a version the registry does not hold
    ├── LoopConfigError             the closed loop's loop.toml
    └── ServingError                the REST service
        └── ApiError                an answer of the API as it stands: status, code, one line

The CLI turns any of them into ``error: MESSAGE`` and exit code 1
(:func:`parkloop.cli.app.run`); the HTTP layer answers each with the status and code of
:data:`parkloop.serve.errors.HTTP_ANSWERS`. Events that fail validation are *not* errors:
they are quarantined with their reason and the rest of their batch is stored (see
:mod:`parkloop.raw.validate`).
"""

from __future__ import annotations


class ParkloopError(Exception):
    """Base of every error parkloop raises on purpose."""


class StoreError(ParkloopError):
    """The store directory or its database cannot be used."""


class StoreNotFound(StoreError):
    """No store exists at the given path."""


class StoreLocked(StoreError):
    """Another process has the store open for writing."""


class StoreFull(StoreError):
    """The store's filesystem has no space left; the write that hit it stored nothing."""


class StoreVersionError(StoreError):
    """The store's schema version is not one this parkloop can read."""


class RejectedInput(ParkloopError):
    """Input refused as a whole, with a reason the caller can act on."""


class InvalidBatch(RejectedInput):
    """A batch whose device id or batch id is unusable, so it cannot be stored or quarantined."""

    def __init__(self, message: str, *, device_id: str | None = None, batch_id: str | None = None):
        super().__init__(message)
        self.device_id = device_id
        self.batch_id = batch_id


class BatchConflict(RejectedInput):
    """A batch id reused for different content on the same device."""

    def __init__(self, device_id: str, batch_id: str, stored_hash: str | None,
                 new_hash: str) -> None:
        super().__init__(
            f"batch {batch_id!r} of device {device_id!r} is already stored with different "
            f"content (stored {(stored_hash or '?')[:12]}, sent {new_hash[:12]}); use a new "
            "batch id"
        )
        self.device_id = device_id
        self.batch_id = batch_id
        self.stored_hash = stored_hash
        self.new_hash = new_hash


class SourceError(RejectedInput):
    """An import source (file, folder, archive) that cannot be read at all."""


class DeviceAlreadyRegistered(RejectedInput):
    """A device that already has a token was registered again (issue a new token instead)."""

    def __init__(self, device_id: str) -> None:
        super().__init__(f"device {device_id!r} is already registered; to replace its token "
                         f"run `parkloop device token {device_id}`")
        self.device_id = device_id


class FactsError(ParkloopError):
    """Rules versions and fact building."""


class ModelError(ParkloopError):
    """Model specs, training and scoring."""


class RegistryError(ParkloopError):
    """The model registry."""


class UnknownModelVersion(RegistryError):
    """A model version the registry does not hold."""


class LoopConfigError(ParkloopError):
    """``loop.toml`` is not valid."""


class ServingError(ParkloopError):
    """The REST service."""


class ApiError(ServingError):
    """An API answer decided where it arises (an unknown device, a missing token, a loop pass
    already running): its HTTP status, a stable code and one line for a person, answered as
    ``{"error": CODE, "message": LINE}``."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


__all__ = [
    "ApiError",
    "BatchConflict",
    "DeviceAlreadyRegistered",
    "FactsError",
    "InvalidBatch",
    "LoopConfigError",
    "ModelError",
    "ParkloopError",
    "RegistryError",
    "RejectedInput",
    "ServingError",
    "SourceError",
    "StoreError",
    "StoreFull",
    "StoreLocked",
    "StoreNotFound",
    "StoreVersionError",
    "UnknownModelVersion",
]
