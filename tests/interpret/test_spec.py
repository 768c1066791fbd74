"""Model specs: the shipped one loads, a store's own is found, every problem is named at once,
and the identity follows the parameters (not the formatting)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from parkloop.errors import ModelError
from parkloop.facts.features import FEATURES
from parkloop.interpret.spec import DEFAULT_SPEC, Rule, load_spec, parse_spec

SMALL = """\
description = "small"
features = ["leg_duration_s", "leg_p85_speed_mps"]

[[exclude]]
feature = "leg_duration_s"
above = 21600.0
reason = "merged recording"

[learners.rule]
kind = "rule"
feature = "leg_p85_speed_mps"
threshold = 12.0

[learners.logistic]
kind = "logistic"
C = 0.3
"""


def test_the_shipped_spec_loads() -> None:
    spec = load_spec(DEFAULT_SPEC)
    assert spec.name == "parked"
    assert spec.rules == "v1"
    assert set(spec.features) <= set(FEATURES)
    assert len(spec.features) == len(set(spec.features))
    assert set(spec.learners) == {"rule", "boosting"}
    assert isinstance(spec.learners["rule"], Rule)
    assert spec.learners["rule"].feature in spec.features
    assert all(e.feature in FEATURES for e in spec.exclude)
    assert re.fullmatch(r"parked@[0-9a-f]{12}", spec.identity)
    assert spec.identity == load_spec("parked", Path("/nonexistent-store")).identity


def test_a_store_spec_is_found_and_may_shadow_a_shipped_one(tmp_path: Path) -> None:
    (tmp_path / "specs").mkdir()
    (tmp_path / "specs" / "small.toml").write_text(SMALL)
    spec = load_spec("small", tmp_path)
    assert spec.name == "small"
    assert spec.text == SMALL
    assert spec.features == ["leg_duration_s", "leg_p85_speed_mps"]
    assert spec.train.folds == 5  # defaults fill what the author left out

    (tmp_path / "specs" / "parked.toml").write_text(SMALL)
    assert load_spec("parked", tmp_path).text == SMALL
    assert load_spec("parked").text != SMALL

    with pytest.raises(ModelError, match=r"no model spec 'nope'; available: parked, small$"):
        load_spec("nope", tmp_path)


def _problems(text: str) -> str:
    with pytest.raises(ModelError) as info:
        parse_spec("bad", text, "specs/bad.toml")
    message = str(info.value)
    assert message.startswith("specs/bad.toml: ")
    assert len(message.splitlines()) == 1
    return message


def test_every_problem_is_named_in_one_error() -> None:
    text = SMALL.replace('"leg_duration_s", "leg_p85_speed_mps"',
                         '"leg_duration_s", "warp_factor"')
    text = text.replace("above = 21600.0\n", "")
    message = _problems(text)
    assert "unknown features ['warp_factor']" in message
    assert "rule learners ['rule'] read a feature not in `features`" in message
    assert "exclude.0" in message
    assert "give `above` or `below`" in message


@pytest.mark.parametrize(("change", "expected"), [
    (lambda t: t.replace('"leg_p85_speed_mps"]', '"leg_p85_speed_mps", "nope"]'),
     r"unknown features \['nope'\]"),
    (lambda t: t.replace('feature = "leg_p85_speed_mps"', 'feature = "leg_p95_speed_mps"'),
     r"rule learners \['rule'\] read a feature not in `features`"),
    (lambda t: t.replace('feature = "leg_duration_s"', 'feature = "leg_speed_of_light"'),
     r"unknown features \['leg_speed_of_light'\]"),
    (lambda t: t.replace("above = 21600.0\n", ""), r"exclude\.0: .*give `above` or `below`"),
    (lambda t: t.replace("[learners.logistic]", "[learners.logistic"), "not valid TOML"),
    (lambda t: t.replace("C = 0.3", "C = -1"), r"learners\.logistic\.logistic\.C: .*greater"),
    (lambda t: t + "\n[train]\nfolds = 1\n", r"train\.folds: .*greater than or equal to 2"),
    (lambda t: t + "\n[train]\nselect = 'accuracy'\n", r"train\.select: "),
    (lambda t: t + "\nlearning = 'deep'\n", r"learning: Extra inputs are not permitted"),
], ids=["unknown-feature", "rule-outside-features", "unknown-exclude-feature",
        "exclude-without-bound", "bad-toml", "bad-C", "one-fold", "unknown-select",
        "unknown-key"])
def test_each_problem_alone(change: Callable[[str], str], expected: str) -> None:
    assert re.search(expected, _problems(change(SMALL)))


def test_identity_follows_the_parameters_only() -> None:
    base = parse_spec("small", SMALL).identity
    assert re.fullmatch(r"small@[0-9a-f]{12}", base)
    # formatting, comments, key order and spelled-out defaults are not parameters
    reformatted = ("# a comment\n" + SMALL.replace("C = 0.3", "C   =   0.30  # stronger")
                   .replace("threshold = 12.0", "threshold = 12")
                   + "\n[train]\nfolds = 5\nseed = 0\n")
    assert parse_spec("small", reformatted).identity == base
    reordered = SMALL.replace('kind = "rule"\nfeature = "leg_p85_speed_mps"',
                              'feature = "leg_p85_speed_mps"\nkind = "rule"')
    assert parse_spec("small", reordered).identity == base
    # the name is part of the identity
    assert parse_spec("other", SMALL).identity.split("@")[1] == base.split("@")[1]
    assert parse_spec("other", SMALL).identity != base
    # any parameter changes it
    changed = [SMALL.replace("C = 0.3", "C = 0.4"),
               SMALL.replace("threshold = 12.0", "threshold = 12.5"),
               SMALL.replace("above = 21600.0", "above = 21601.0"),
               SMALL + "\n[train]\nfolds = 4\n",
               SMALL + "\n[gate]\nmin_f1 = 0.7\n",
               SMALL.replace('"leg_duration_s", "leg_p85_speed_mps"',
                             '"leg_p85_speed_mps", "leg_duration_s"')]
    identities = {parse_spec("small", t).identity for t in changed}
    assert base not in identities
    assert len(identities) == len(changed)
