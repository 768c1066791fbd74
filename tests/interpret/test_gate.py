"""The loop's gate: a challenger that learns people can win on warm figures; one no better
keeps the champion."""

from __future__ import annotations

from parkloop.interpret.gate import gate
from parkloop.interpret.spec import load_spec

SPEC = load_spec("parked")
GOOD = {"nested_f1": 0.8, "pr_auc": 0.8}


def unseen(mine: float, theirs: float, n: int = 100) -> dict[str, float]:
    return {"n": n, "n_parked": n / 4, "challenger_pr_auc": mine, "champion_pr_auc": theirs}


def warm(mine: float, theirs: float, people: int = 5) -> dict[str, float]:
    return {"people": people, "challenger_f1": mine, "champion_f1": theirs}


def test_learning_people_wins_on_warm_figures_alone() -> None:
    verdict = gate(SPEC, GOOD, None, unseen=unseen(0.70, 0.70), warm=warm(0.60, 0.30))
    assert verdict.passed, verdict.reasons
    assert verdict.figures["warm_challenger_f1"] == 0.60


def test_no_better_anywhere_keeps_the_champion() -> None:
    verdict = gate(SPEC, GOOD, None, unseen=unseen(0.70, 0.70), warm=warm(0.40, 0.40))
    assert not verdict.passed
    assert any("does not beat" in r for r in verdict.reasons)


def test_better_on_leg_ends_but_worse_for_people_keeps_the_champion() -> None:
    verdict = gate(SPEC, GOOD, None, unseen=unseen(0.80, 0.70), warm=warm(0.20, 0.50))
    assert not verdict.passed
    assert any("falls short" in r for r in verdict.reasons)


def test_too_few_unseen_leg_ends_leaves_the_warm_figures_to_decide() -> None:
    assert gate(SPEC, GOOD, None, unseen=unseen(0.9, 0.1, n=3), warm=warm(0.6, 0.3)).passed
    assert not gate(SPEC, GOOD, None, unseen=unseen(0.9, 0.1, n=3), warm=None).passed
