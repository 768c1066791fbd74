"""Rules versions: shipped files load, identity is content-derived, users add their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from parkloop.errors import FactsError
from parkloop.facts import rules as R
from parkloop.facts.rules import available, load_rules

V1 = (R.SHIPPED / "v1.toml").read_text()


def test_shipped_versions_load() -> None:
    assert {"v1", "trackintel-sliding"} <= set(available())
    assert load_rules("v1").identity != load_rules("trackintel-sliding").identity


def test_identity_is_name_plus_hash_of_params_and_engine(tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "mine.toml").write_text(V1.replace("radius_m = 100.0", "radius_m = 100"))
    mine = load_rules("mine", tmp_path)
    v1 = load_rules("v1")
    assert mine.digest == v1.digest  # same values, another spelling: same parameters
    assert mine.identity == f"mine@{v1.digest[:12]}"
    (tmp_path / "rules" / "mine.toml").write_text(V1.replace("radius_m = 100.0", "radius_m = 90.0"))
    assert load_rules("mine", tmp_path).digest != v1.digest
    retitled = V1.replace("description = ", "description = 'x' #")
    (tmp_path / "rules" / "mine.toml").write_text(retitled)
    assert load_rules("mine", tmp_path).digest == v1.digest  # the description is not a rule
    before = v1.digest
    monkeypatch.setattr(R, "ENGINE_VERSION", "999")
    assert load_rules("v1").digest != before


@pytest.mark.parametrize(("text", "message"), [
    ("[stops]\nradius_m = -5", "stops.radius_m"),
    ("[stops]\nradius = 5", "stops.radius"),
    ("[stops\n", "not valid TOML"),
    ("[legs]\nspeed_window = 'five'", "legs.speed_window"),
])
def test_bad_rules_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "bad.toml").write_text(text)
    with pytest.raises(FactsError, match=message.replace(".", r"\.").replace("[", r"\[")):
        load_rules("bad", tmp_path)


def test_user_rules_cannot_shadow_shipped_ones(tmp_path: Path) -> None:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "v1.toml").write_text(V1)
    with pytest.raises(FactsError, match="shadows"):
        load_rules("v1", tmp_path)


def test_unknown_and_malformed_names() -> None:
    with pytest.raises(FactsError, match="available: trackintel-sliding, v1"):
        load_rules("v0")
    with pytest.raises(FactsError, match="lowercase"):
        load_rules("../etc/passwd")
