"""Scenarios: frozen, units in their names, and documented as they are."""

from __future__ import annotations

import ast
import dataclasses
import inspect
from pathlib import Path

import pytest

import parkloop.simulate as public
from parkloop.simulate import scenarios
from parkloop.simulate.scenarios import SCENARIO_PARAMS, SCENARIOS, Scenario

DOCS = Path(__file__).resolve().parents[2] / "docs" / "simulator.md"
GROUPS = {"traffic": scenarios.Traffic, "travel": scenarios.Travel,
          "phone": scenarios.PhoneMix, "uploads": scenarios.Uploads}
UNITLESS = ("_prob", "_share", "_step", "_right", "_wrong")


def _field_docs() -> dict[tuple[str, str], str]:
    """The docstring under each dataclass field of the scenarios module."""
    out = {}
    for node in ast.parse(inspect.getsource(scenarios)).body:
        if isinstance(node, ast.ClassDef):
            for a, b in zip(node.body, node.body[1:], strict=False):
                if (isinstance(a, ast.AnnAssign) and isinstance(a.target, ast.Name)
                        and isinstance(b, ast.Expr) and isinstance(b.value, ast.Constant)):
                    out[(node.name, a.target.id)] = " ".join(str(b.value.value).split())
    return out


def _fmt(v: object) -> str:
    if isinstance(v, tuple):
        return ", ".join(f"{x:g}" for x in v)
    assert isinstance(v, float | int)
    return f"{v:g}"


def test_public_surface() -> None:
    assert public.__all__ == ["SCENARIOS", "SimulationSummary", "simulate"]
    assert tuple(SCENARIO_PARAMS) == SCENARIOS
    assert {"default", "shifted"} <= set(SCENARIOS)
    assert all(sc.name == name for name, sc in SCENARIO_PARAMS.items())


def test_scenarios_are_frozen_and_name_their_units() -> None:
    sc = SCENARIO_PARAMS["default"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        sc.traffic.jam_prob = 1.0  # type: ignore[misc]
    docs = _field_docs()
    for cls in GROUPS.values():
        for f in dataclasses.fields(cls):
            assert f.name.endswith(("_s", "_m", "_mps", *UNITLESS)), f.name
            assert docs.get((cls.__name__, f.name)), f"{cls.__name__}.{f.name} has no docstring"


@pytest.mark.parametrize("group", list(GROUPS))
def test_the_docs_table_matches_the_code(group: str) -> None:
    text = DOCS.read_text()
    default, shifted = SCENARIO_PARAMS["default"], SCENARIO_PARAMS["shifted"]
    cls, docs = GROUPS[group], _field_docs()
    for f in dataclasses.fields(cls):
        a, b = getattr(getattr(default, group), f.name), getattr(getattr(shifted, group), f.name)
        b_text = f"**{_fmt(b)}**" if a != b else _fmt(b)
        row = f"| `{f.name}` | {_fmt(a)} | {b_text} | {docs[(cls.__name__, f.name)]} |"
        assert row in text, f"docs/simulator.md lacks or misstates: {row}"


def test_a_scenario_needs_only_a_name() -> None:
    assert Scenario("calm").traffic == SCENARIO_PARAMS["default"].traffic
    with pytest.raises(ValueError, match="known: default, shifted"):
        scenarios.scenario("calm")
