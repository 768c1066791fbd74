"""Rules versions: named, immutable parameter sets; identity = name + hash(params, engine).

Shipped versions live beside this module (``rules/*.toml``); a user adds one by writing
``<store>/rules/NAME.toml`` — no code. Every fact row carries :attr:`RulesVersion.identity`.

>>> v1 = load_rules("v1")
>>> v1.identity.startswith("v1@"), len(v1.identity)
(True, 15)
>>> v1.params.stops.radius_m
100.0
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from parkloop.errors import FactsError

ENGINE_VERSION = "5"
"""Version of the code that applies rules. Bump it whenever any step's output changes for the
same parameters: it is part of every rules identity (tests pin the output to it)."""

SHIPPED = Path(__file__).with_name("rules")
NAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789-_.")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Order(_Section):
    dedup: Literal["time", "exact"] = "time"
    allowed_lateness_s: Annotated[float, Field(ge=0)] = 21600


class Clean(_Section):
    max_accuracy_m: Annotated[float, Field(gt=0)] = 200.0
    max_speed_mps: Annotated[float, Field(gt=0)] = 80.0


class Stops(_Section):
    radius_m: Annotated[float, Field(gt=0)] = 100.0
    min_duration_s: Annotated[float, Field(ge=0)] = 300
    max_gap_s: Annotated[float, Field(gt=0)] = 900
    distance: Literal["haversine", "cosine_law"] = "haversine"
    position: Literal["median", "trackintel"] = "median"
    gap_within_radius: Literal["restart", "continue"] = "continue"
    """after a recording gap longer than max_gap_s: restart the window (trackintel), or
    continue it if the device is still within radius_m of the anchor (a phone that slept
    where it lay)"""


class Legs(_Section):
    vehicle_speed_mps: Annotated[float, Field(gt=0)] = 7.0
    walk_max_speed_mps: Annotated[float, Field(gt=0)] = 2.5
    speed_window: Annotated[int, Field(ge=1, le=51)] = 3
    speed_baseline_s: Annotated[float, Field(ge=0)] = 20.0
    tail_speed_mps: Annotated[float, Field(ge=0)] = 4.0
    max_pause_s: Annotated[float, Field(ge=0)] = 240
    min_vehicle_leg_m: Annotated[float, Field(ge=0)] = 400.0


class Places(_Section):
    radius_m: Annotated[float, Field(gt=0)] = 150.0


class Features(_Section):
    wait_s: Annotated[float, Field(ge=0)] = 600


class Params(_Section):
    """Every parameter of a rules version, with its unit in its name."""

    description: str = ""
    order: Order = Order()
    clean: Clean = Clean()
    stops: Stops = Stops()
    legs: Legs = Legs()
    places: Places = Places()
    features: Features = Features()


@dataclass(frozen=True)
class RulesVersion:
    """A loaded rules version: its name, parameters, and content-derived identity."""

    name: str
    params: Params
    source: Path

    @cached_property
    def digest(self) -> str:
        """SHA-256 of the canonical parameters and the engine version (computed once: the
        parameters are frozen, and every fact row carries it)."""
        canonical = json.dumps({"engine": ENGINE_VERSION, "params": _canonical(
            self.params.model_dump(exclude={"description"}))}, sort_keys=True,
            separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def identity(self) -> str:
        """``name@`` + the first 12 hex digits of :attr:`digest`: stored with every fact."""
        return f"{self.name}@{self.digest[:12]}"

    @property
    def horizon_ms(self) -> int:
        """How far after a fact's end data can still change it (ms): facts older than the
        watermark minus this are final in the incremental engine."""
        p = self.params
        return int(1000 * (p.stops.max_gap_s + 2 * p.legs.max_pause_s + p.features.wait_s
                           + p.stops.min_duration_s + p.legs.speed_baseline_s))


def _canonical(value: object) -> object:
    """Floats that are integers hash as integers, inf as a string: one spelling per value."""
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    if isinstance(value, float):
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return int(value) if value.is_integer() else value
    return value


def rules_dirs(store_path: Path | None) -> list[Path]:
    """Where rules versions are found: the store's ``rules/`` folder, then the shipped ones."""
    return ([store_path / "rules"] if store_path is not None else []) + [SHIPPED]


def available(store_path: Path | None = None) -> list[str]:
    """Names of every rules version that can be built."""
    names = {p.stem for d in rules_dirs(store_path) if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names)


def load_rules(name: str, store_path: Path | None = None) -> RulesVersion:
    """Load rules version ``name``; raise :class:`FactsError` with every problem at once."""
    if not name or set(name) - NAME_CHARS:
        raise FactsError(f"rules name {name!r}: use lowercase letters, digits, - _ .")
    shipped = SHIPPED / f"{name}.toml"
    user = store_path / "rules" / f"{name}.toml" if store_path is not None else None
    if user is not None and user.is_file():
        if shipped.is_file():
            raise FactsError(f"{user} shadows the shipped rules version {name!r}; rename it")
        path = user
    elif shipped.is_file():
        path = shipped
    else:
        raise FactsError(f"no rules version {name!r}; available: "
                         f"{', '.join(available(store_path))}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        params = Params.model_validate(data)
    except tomllib.TOMLDecodeError as exc:
        raise FactsError(f"{path}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise FactsError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise FactsError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors(include_url=False))
        raise FactsError(f"{path}: {problems}") from None
    return RulesVersion(name, params, path)
