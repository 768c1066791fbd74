"""The API's request and response models: the OpenAPI document is made of these."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat

from parkloop.raw.events import ID_PATTERN

MAX_EVENTS = 20_000
"""events per POSTed batch at most (larger batches: 413, nothing stored)"""
ID = ID_PATTERN.pattern
"""what a device, batch or feedback id may be"""

class Error(BaseModel):
    error: str = Field(description="stable error code")
    message: str = Field(description="what was wrong, in one line")


class CarAnswerOut(BaseModel):
    """Where the device's car is. ``status``: ``parked`` (at lat/lon since ``parked_at``),
    ``driven_away`` (a vehicle leg started from where it was parked), or ``unknown``."""

    device_id: str
    status: Literal["parked", "driven_away", "unknown"]
    parked: bool
    lat: float | None
    lon: float | None
    parked_at: str | None = Field(description="when the car stopped, UTC ISO 8601")
    p_parked: float | None = Field(description="the model's p(parked) of that leg end")
    known_since: str | None = Field(description="when the server first gave this answer")
    reason: str
    model_version: str | None = Field(description="registry version of the model behind it")
    rules_version: str = Field(description="rules identity of the facts it read")


class Health(BaseModel):
    ok: bool


class WorkerOut(BaseModel):
    worker: int
    pid: int | None = Field(description="its process (null: a thread of the server's)")
    state: str = Field(description="`replaying` its shards' raw log after a (re)start, or "
                       "`serving`; a replaying worker's devices keep their last answers")
    raw_watermark: int = Field(description="the newest raw batch its answers include")
    restarts: int = Field(description="times it died and was started again")


class Ready(BaseModel):
    ready: bool
    reason: str | None = None
    model_version: str | None = None
    rules_version: str | None = None
    raw_watermark: int | None = Field(
        default=None, description="the newest raw batch the live answers include")
    raw_committed: int | None = Field(default=None, description="the newest raw batch stored")
    shards: str | None = Field(
        default=None, description="how shards map to workers: worker k owns the shards s with "
        "`s % workers == k` (a device's shard: docs/serving.md)")
    workers: list[WorkerOut] = Field(default_factory=list,
                                     description="the live pipeline's workers")


class EventsIn(BaseModel):
    """A batch of one device's events. Storing is idempotent per ``batch_id``: a retry with the
    same content is a duplicate and stored once; other content under a stored id is refused
    (409)."""

    model_config = ConfigDict(extra="forbid")
    batch_id: str = Field(pattern=ID, max_length=128)
    events: list[Any] = Field(
        max_length=MAX_EVENTS, description="events as in docs/raw-schema.md: fix, activity, "
        "vehicle_link, label, feedback; invalid ones are quarantined with their reasons")


class Rejected(BaseModel):
    seq: int
    kind: str | None
    reason: str
    detail: str


class EventsOut(BaseModel):
    device_id: str
    batch_id: str
    status: Literal["stored", "duplicate"]
    batch_no: int
    n_events: int
    n_stored: int
    n_quarantined: int
    reasons: dict[str, int] = Field(description="quarantined events by reason")
    rejected: list[Rejected] = Field(description="the first 100 quarantined events")


class FeedbackIn(BaseModel):
    """A person's word on a parking answer: ``parked`` true ("yes, here") or false ("no")."""

    model_config = ConfigDict(extra="forbid")
    parked_at: Annotated[int, Field(ge=-(2**53), le=2**53)] | str = Field(
        description="parked_at of the answer: ms or ISO 8601")
    lat: StrictFloat = Field(ge=-90, le=90)
    lon: StrictFloat = Field(ge=-180, le=180)
    parked: StrictBool
    model_version: str | None = Field(default=None, max_length=128)
    rules_version: str | None = Field(default=None, max_length=128)
    feedback_id: str | None = Field(
        default=None, pattern=ID, max_length=128,
        description="idempotency key; defaults to one derived from the content")
    t: Annotated[int, Field(ge=-(2**53), le=2**53)] | str | None = Field(
        default=None, description="when the person said it: ms or ISO 8601; default: when "
        "the server received it")


class LoopRunOut(BaseModel):
    started: bool


class DeviceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(pattern=ID, max_length=128)


class DeviceOut(BaseModel):
    device_id: str
    token: str = Field(description="shown once; only its SHA-256 digest is stored")


class FactsOut(BaseModel):
    device_id: str
    rules_version: str
    rows: list[dict[str, Any]] = Field(
        description="newest last; `final` false marks rows later events may still change")


class ModelOut(BaseModel):
    version: str
    is_champion: bool
    created_ms: int | None = None
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="published through the API", max_length=500)


class ChampionOut(BaseModel):
    champion: str | None


class RulesOut(BaseModel):
    name: str
    identity: str
    serving: bool


__all__ = [
    "ID",
    "MAX_EVENTS",
    "CarAnswerOut",
    "ChampionOut",
    "DeviceIn",
    "DeviceOut",
    "Error",
    "EventsIn",
    "EventsOut",
    "FactsOut",
    "FeedbackIn",
    "Health",
    "LoopRunOut",
    "ModelOut",
    "Ready",
    "ReasonIn",
    "Rejected",
    "RulesOut",
    "WorkerOut",
]
