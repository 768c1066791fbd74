"""The loop's proof on the store path: a champion trained on the default scenario, people of
the shifted scenario arrive, and one `parkloop loop run` notices, retrains, gates and
publishes; passes over unchanged data keep the champion; a retrain that fails keeps it too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from parkloop.interpret.registry import Registry
from parkloop.loop.run import run_pass
from parkloop.store import Store
from tests.conftest import run_cli
from tests.loop.stores import small_spec, truth_f1


def loop_run(store: Path) -> dict[str, Any]:
    """One pass, in this process (the CLI's own path is taken once, below)."""
    with Store.open(store) as s:
        return run_pass(s, store, actor="cli")


def versions(store: Path) -> list[bool]:
    """Which registered versions are champion, oldest first."""
    return [v.is_champion for v in Registry(store).versions()]


def test_nothing_new_keeps_the_champion(champion_store: Path) -> None:
    quiet = loop_run(champion_store)
    assert (quiet["decision"], quiet["champion"], quiet["alarms"]) == ("kept", "1", [])
    assert quiet["reason"] == "no monitor is in alarm"
    assert {m["value"] for m in quiet["monitors"].values()} <= {None, 0.0}
    assert versions(champion_store) == [True]


def test_shifted_people_make_the_loop_retrain_and_publish_a_better_model(
        shifted_store: Path) -> None:
    store = shifted_store
    # a retrain that fails (a spec excluding every leg end) leaves the champion serving
    good_spec = (store / "specs" / "parked.toml").read_text()
    (store / "specs" / "parked.toml").write_text(good_spec + (
        '\n[[exclude]]\nfeature = "leg_duration_s"\nbelow = 1e12\nreason = "test: all"\n'))
    record = loop_run(store)
    assert record["decision"] == "failed"
    assert "champion 1 keeps serving" in record["reason"]
    assert {"drift", "accuracy"} <= set(record["fired"])
    assert versions(store) == [True]

    (store / "specs" / "parked.toml").write_text(good_spec)
    shifted = json.loads(run_cli("loop", "run", "--json", store=store).stdout)
    assert shifted["decision"] == "published", shifted["reason"]
    assert shifted["champion"] == "1"
    monitors = shifted["monitors"]
    assert monitors["drift"]["alarm"]
    assert monitors["accuracy"]["alarm"]
    assert monitors["accuracy"]["value"] < monitors["accuracy"]["threshold"]["alarm"]
    assert "implicit" in monitors["accuracy"]["detail"]["by_source"]
    gate = shifted["retrain"]["gate"]["figures"]
    assert gate["unseen_n"] >= 20
    assert gate["unseen_challenger_pr_auc"] >= gate["unseen_champion_pr_auc"] + 0.01
    assert gate["unseen_challenger_accuracy"] > gate["unseen_champion_accuracy"]
    assert versions(store) == [False, True]  # the failed retrain registered nothing
    new = shifted["retrain"]["version"]
    assert shifted["reason"].startswith(f"version {new} replaces 1")
    # judged against the simulator's ground truth, the new champion finds the shifted
    # people's cars better
    assert truth_f1(store, new) > truth_f1(store, "1") + 0.05

    # the same data again: no retrain, no publish by chance
    again = loop_run(store)
    assert (again["decision"], again["champion"]) == ("kept", new)
    assert "retrain" not in again
    assert versions(store) == [False, True]

    history = json.loads(run_cli("loop", "history", "--json", store=store).stdout)
    assert [r["decision"] for r in history] == ["failed", "published", "kept"]
    audit = json.loads(run_cli("model", "history", "--json", store=store).stdout)
    assert (audit[-1]["action"], audit[-1]["version"], audit[-1]["actor"]) == (
        "publish", new, "loop:cli")
    plot = store.parent / "loop.png"
    run_cli("loop", "plot", "--out", plot, store=store)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_small_spec_is_the_shipped_one_cut_down() -> None:
    text = small_spec()
    assert "[learners.logistic]" in text
    assert "[learners.boosting]" not in text
    assert "unsaid_copies = true" in text


def test_no_retrain_before_the_gate_could_compare(shifted_store: Path) -> None:
    """In alarm, but fewer labelled leg ends the champion never saw than the gate compares
    on: training now could only fail the gate (and start the cooldown), so none starts."""
    toml = shifted_store / "loop.toml"
    toml.write_text(toml.read_text().replace("min_unseen = 20", "min_unseen = 100000"))
    record = loop_run(shifted_store)
    assert record["alarms"]
    assert record["decision"] == "kept"
    assert record["reason"].startswith("in alarm, but only ")
    assert "the gate compares on at least 100000" in record["reason"]
    assert "retrain" not in record
    assert versions(shifted_store) == [True]
