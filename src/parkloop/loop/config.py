"""The loop's configuration: the shipped ``loop.toml`` with ``<store>/loop.toml`` merged over it.

>>> config = load_config()
>>> config.monitors.drift.alarm, config.schedule.spec
(0.25, 'parked')
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parkloop.errors import LoopConfigError

SHIPPED = Path(__file__).with_name("loop.toml")
USER_FILE = "loop.toml"


HIGH_IS_BAD = {"drift": True, "accuracy": False, "new_labels": True, "parked_share": True,
               "confidence": True}
"""every monitor, and whether a high value is the bad side of its threshold"""
BAD_SIDE = {name: "above" if high else "below" for name, high in HIGH_IS_BAD.items()}
"""every monitor's bad side of its threshold, as the audit records and the console name it"""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Section):
    """A monitor's alarm line, the line it must come back past to clear, and the sample it
    needs to be judged at all. Which side is bad is the monitor's own (see
    :data:`parkloop.loop.monitors.HIGH_IS_BAD`)."""

    alarm: float
    clear: float
    min_samples: Annotated[int, Field(ge=0)]


class Drift(Threshold):
    alpha: Annotated[float, Field(gt=0, lt=1)] = 0.01
    min_effect: Annotated[float, Field(ge=0, le=1)] = 0.1


class Accuracy(Threshold):
    implicit_far_m: Annotated[float, Field(gt=0)] = 1000.0


class Monitors(_Section):
    drift: Drift
    accuracy: Accuracy
    new_labels: Threshold
    parked_share: Threshold
    confidence: Threshold

    @model_validator(mode="after")
    def _hysteresis(self) -> Monitors:
        wrong = [name for name, high in HIGH_IS_BAD.items()
                 if (t := getattr(self, name)).clear != t.alarm
                 and (t.clear > t.alarm) == high]
        if wrong:
            raise ValueError(f"{', '.join(wrong)}: `clear` must lie on the good side of `alarm`")
        return self


class Schedule(_Section):
    interval_s: Annotated[float, Field(gt=0)]
    window_days: Annotated[float, Field(gt=0)]
    min_retrain_interval_s: Annotated[float, Field(ge=0)]
    spec: str


class GateConfig(_Section):
    min_unseen: Annotated[int, Field(ge=1)]


class Rollback(_Section):
    margin: Annotated[float, Field(ge=0, le=1)]
    min_samples: Annotated[int, Field(ge=1)]


class LoopConfig(_Section):
    schedule: Schedule
    monitors: Monitors
    gate: GateConfig
    rollback: Rollback


def load_config(store_path: Path | None = None) -> LoopConfig:
    """The shipped configuration with ``<store>/loop.toml`` (if there is one) merged over it;
    every problem at once in one :class:`LoopConfigError`."""
    raw = _read(SHIPPED)
    user = store_path / USER_FILE if store_path is not None else None
    if user is not None and user.exists():  # a loop.toml that cannot be read is an error
        raw = _merge(raw, _read(user))
    try:
        return LoopConfig.model_validate(raw)
    except ValidationError as exc:
        where = user if user is not None and user.exists() else SHIPPED
        problems = [f"{'.'.join(map(str, e['loc'])) or 'loop'}: "
                    f"{e['msg'].removeprefix('Value error, ')}"
                    for e in exc.errors(include_url=False)]
        raise LoopConfigError(f"{where}: {'; '.join(problems)}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise LoopConfigError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise LoopConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise LoopConfigError(f"{path}: cannot be read ({exc.strerror or exc})") from None


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        out[key] = (_merge(base[key], value) if isinstance(value, dict)
                    and isinstance(base.get(key), dict) else value)
    return out
