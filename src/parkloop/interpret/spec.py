"""Model specs: what a model reads, how it is trained and when it may be published.

A spec is a TOML file its author writes (shipped ones in ``specs/``, or
``<store>/specs/NAME.toml``); the engine applies it. Its identity is its name and the hash of
its content, recorded with every model trained from it.

>>> spec = load_spec("parked")
>>> spec.rules, spec.train.select, "leg_p85_speed_mps" in spec.features
('v1', 'pr_auc', True)
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from parkloop.errors import ModelError
from parkloop.facts.features import FEATURES

SHIPPED = Path(__file__).with_name("specs")
DEFAULT_SPEC = "parked"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Exclude(_Section):
    """Leave a labelled leg end out of training where ``feature`` is above or below a bound."""

    feature: str
    above: float | None = None
    below: float | None = None
    reason: str

    @model_validator(mode="after")
    def _bounded(self) -> Exclude:
        if self.above is None and self.below is None:
            raise ValueError("give `above` or `below`")
        return self

    def matches(self, x: np.ndarray) -> np.ndarray:
        """Rows of column ``x`` this rule excludes (NaN never matches)."""
        hit = np.zeros(len(x), bool)
        with np.errstate(invalid="ignore"):
            if self.above is not None:
                hit |= x > self.above
            if self.below is not None:
                hit |= x < self.below
        return hit


class Rule(_Section):
    kind: Literal["rule"]
    feature: str
    threshold: float


class Logistic(_Section):
    kind: Literal["logistic"]
    C: Annotated[float, Field(gt=0)] = 1.0


class Boosting(_Section):
    kind: Literal["boosting"]
    max_iter: Annotated[int, Field(ge=1)] = 200
    learning_rate: Annotated[float, Field(gt=0, le=1)] = 0.05
    max_leaf_nodes: Annotated[int, Field(ge=2)] = 15
    min_samples_leaf: Annotated[int, Field(ge=1)] = 20
    l2_regularization: Annotated[float, Field(ge=0)] = 1.0


Learner = Annotated[Rule | Logistic | Boosting, Field(discriminator="kind")]


class Train(_Section):
    folds: Annotated[int, Field(ge=2)] = 5
    seed: int = 0
    select: Literal["pr_auc", "f1"] = "pr_auc"
    calibration: Literal["sigmoid", "isotonic", "none"] = "sigmoid"
    threshold: Literal["best_f1"] | Annotated[float, Field(gt=0, lt=1)] = "best_f1"
    max_labels_per_device: Annotated[int, Field(ge=0)] = 0
    unsaid_copies: bool = False
    """train on every labelled leg end twice: as built, and as a stranger's would be (with
    nothing the person said), so that the model answers both"""


class Gate(_Section):
    min_f1: Annotated[float, Field(ge=0, le=1)] = 0.0
    min_pr_auc: Annotated[float, Field(ge=0, le=1)] = 0.0
    margin: float = 0.0


class Policy(_Section):
    """When a p(parked) becomes a call: what the model's threshold alone does not say."""

    stranger_odds: Annotated[float, Field(ge=1)] = 1.0
    """how many times the odds of the model's threshold, p / (1 - p), a leg end needs to be
    called parked when its person has said nothing before it (no label, no feedback): a
    wrong parking place costs a person more than an honest "unknown", and a stranger's leg
    ends are the ones the model knows least. Odds, not a fixed p, so that the rule keeps its
    meaning whatever threshold training chooses; 1: no extra care"""
    ride_on_away_m: Annotated[float, Field(ge=0)] | None = None
    """a halt where the vehicle moved on within the wait while the phone stayed within this
    of the halt (a bus, train or car the person never left) is never a parking, m; none:
    the model alone decides"""


class SpecParams(_Section):
    description: str = ""
    rules: str = "v1"
    features: Annotated[list[str], Field(min_length=1)]
    exclude: list[Exclude] = []
    learners: Annotated[dict[str, Learner], Field(min_length=1)]
    train: Train = Train()
    gate: Gate = Gate()
    policy: Policy = Policy()

    @model_validator(mode="after")
    def _known_features(self) -> SpecParams:
        problems = _feature_problems(
            self.features, [e.feature for e in self.exclude],
            {n: ln.feature for n, ln in self.learners.items() if isinstance(ln, Rule)})
        if problems:
            raise ValueError("; ".join(problems))
        return self


def _feature_problems(features: list[str], excluded: list[str], rules: dict[str, str]
                      ) -> list[str]:
    """Feature names no leg end has, and rule learners reading a feature the spec does not
    list."""
    problems = []
    unknown = sorted(set([*features, *excluded, *rules.values()]) - set(FEATURES))
    if unknown:
        problems.append(f"unknown features {unknown}; leg ends have: {', '.join(FEATURES)}")
    outside = [n for n, f in rules.items() if f not in features]
    if outside:
        problems.append(f"rule learners {outside} read a feature not in `features`")
    return problems


def _raw_feature_problems(raw: dict[str, Any]) -> list[str]:
    """:func:`_feature_problems` read leniently from the parsed TOML: pydantic skips the
    model validator when a field fails, and a spec's author should learn everything at once."""
    def strings(xs: Any) -> list[str]:
        return [x for x in xs if isinstance(x, str)] if isinstance(xs, list) else []

    excludes = raw.get("exclude")
    learners = raw.get("learners")
    return _feature_problems(
        strings(raw.get("features")),
        strings([e.get("feature") for e in excludes if isinstance(e, dict)]
                if isinstance(excludes, list) else []),
        {n: ln["feature"] for n, ln in learners.items()
         if isinstance(ln, dict) and ln.get("kind") == "rule"
         and isinstance(ln.get("feature"), str)} if isinstance(learners, dict) else {})


@dataclass(frozen=True)
class ModelSpec:
    """A loaded spec: its name, parameters, source text and identity."""

    name: str
    params: SpecParams
    text: str

    @property
    def identity(self) -> str:
        """``name@hash``: the content hash of its parameters."""
        canonical = json.dumps(self.params.model_dump(), sort_keys=True)
        return f"{self.name}@{hashlib.sha256(canonical.encode()).hexdigest()[:12]}"

    def __getattr__(self, item: str) -> Any:  # spec.features, spec.train, ...
        return getattr(self.params, item)


def parse_spec(name: str, text: str, where: str = "spec") -> ModelSpec:
    """A spec from its TOML text; every problem at once in one :class:`ModelError`."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ModelError(f"{where}: not valid TOML ({exc})") from None
    try:
        params = SpecParams.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        problems = [f"{'.'.join(map(str, e['loc'])) or 'spec'}: {e['msg']}" for e in errors]
        if all(e["loc"] for e in errors):  # a field failed, so the feature check did not run
            problems += [f"spec: {p}" for p in _raw_feature_problems(raw)]
        raise ModelError(f"{where}: {'; '.join(problems)}") from None
    return ModelSpec(name, params, text)


def load_spec(name: str, store_path: Path | None = None) -> ModelSpec:
    """Spec ``name`` from ``<store>/specs/`` or the shipped ones."""
    user = store_path / "specs" / f"{name}.toml" if store_path is not None else None
    path = user if user is not None and user.exists() else SHIPPED / f"{name}.toml"
    if not path.exists():
        known = sorted({p.stem for d in (SHIPPED, user.parent if user else None) if d
                        for p in d.glob("*.toml")})
        raise ModelError(f"no model spec {name!r}; available: {', '.join(known)}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ModelError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    return parse_spec(name, text, str(path))
