"""The console routes' answers, as the OpenAPI document describes them (the routes build
their JSON directly; the API's contract tests check every answer against these)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from parkloop.interpret.registry import AuditRecord


class _Answer(BaseModel):
    model_config = ConfigDict(extra="allow")


class RulesName(_Answer):
    name: str
    identity: str


class RulesEntry(RulesName):
    serving: bool


class Serving(_Answer):
    model_version: str | None
    rules_version: str | None
    ready: bool


class DeviceRow(_Answer):
    device_id: str
    n_fixes: int
    first_ms: int | None
    last_ms: int | None
    n_batches: int
    last_received_ms: int


class Overview(_Answer):
    serving: Serving
    rules: list[RulesEntry]
    devices: list[DeviceRow]


class Line(_Answer):
    """Fixes in time order, thinned: ``n`` before thinning, then the columns drawn."""

    n: int
    t: list[int]
    lat: list[float]
    lon: list[float]


class Stop(_Answer):
    started_ms: int
    finished_ms: int
    lat: float
    lon: float
    n_fixes: int
    place_no: int


class Leg(_Answer):
    started_ms: int
    finished_ms: int
    mode: str
    start_lat: float
    start_lon: float
    end_lat: float
    end_lon: float
    distance_m: float | None
    n_fixes: int


class LegEnd(_Answer):
    ended_ms: int
    lat: float
    lon: float
    leg_started_ms: int
    decided_ms: int
    place_no: int
    p_parked: float | None = None
    parked: bool | None = None


class Place(_Answer):
    place_no: int
    lat: float
    lon: float
    n_visits: int
    dwell_total_s: float
    first_ms: int
    last_ms: int


class ModelRef(_Answer):
    version: str
    threshold: float


class Span(_Answer):
    first_ms: int | None
    last_ms: int | None


class Window(_Answer):
    from_ms: int
    to_ms: int


class DeviceView(_Answer):
    device_id: str
    rules: RulesName
    model: ModelRef | None
    span: Span
    range: Window
    raw: Line
    track: Line
    stops: list[Stop]
    legs: list[Leg]
    leg_ends: list[LegEnd]
    places: list[Place]
    car: dict[str, Any] | None
    seconds: float


class Batch(_Answer):
    batch_no: int
    batch_id: str
    source: str
    received_ms: int
    n_fixes: int


class Lineage(_Answer):
    window: Window
    n_fixes: int
    batches: list[Batch]


class Statement(_Answer):
    t_ms: int
    kind: Literal["label", "feedback"]
    batch_no: int
    seq: int
    mode: str | None = None
    parked: bool | None = None


class LegEndDetail(LegEnd):
    device_id: str
    rules: RulesName
    model: ModelRef | None
    features: dict[str, float | int | bool | None]
    lineage: Lineage
    labels: list[Statement]


class Side(RulesName):
    stops: list[Stop]
    leg_ends: list[LegEnd]
    legs: int
    places: int


class Changed(_Answer):
    a: dict[str, Any]
    b: dict[str, Any]
    moved_m: float


class Comparison(_Answer):
    same: int
    changed: list[Changed]
    only_a: list[dict[str, Any]]
    only_b: list[dict[str, Any]]


class Diff(_Answer):
    device_id: str
    a: Side
    b: Side
    stops: Comparison
    leg_ends: Comparison


class ModelVersion(_Answer):
    version: str
    created_ms: int
    is_champion: bool
    tags: dict[str, str]
    metrics: dict[str, float]
    plots: list[str]
    report: bool


class Models(_Answer):
    champion: str | None
    versions: list[ModelVersion]
    history: list[AuditRecord]
    """every publish and rollback, oldest first"""


class Thresholds(_Answer):
    alarm: float
    clear: float
    min_samples: int
    bad: Literal["above", "below"]


class Loop(_Answer):
    interval_s: float
    running: bool
    passes: int
    monitors: dict[str, Thresholds]
    history: list[dict[str, Any]]


class Histogram(_Answer):
    """Cumulative: ``counts[i]`` requests took at most ``buckets[i]`` seconds."""

    count: int
    sum_s: float
    buckets: list[float]
    counts: list[int]


class Quarantine(_Answer):
    since_start: dict[str, int]
    stored: dict[str, int]


class Live(_Answer):
    at_ms: int
    started_ms: int | None
    ready: bool
    committed: int
    lag_batches: int | None
    events: dict[str, int]
    batches: dict[str, int]
    quarantine: Quarantine
    requests: dict[str, Histogram]
