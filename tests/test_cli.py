"""End to end through the command line, as a user (or an outside check) runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer.main

from parkloop.cli import app
from parkloop.store import Store
from tests.conftest import run_cli

STATUS_KEYS = {"fix", "activity", "vehicle_link", "label", "feedback"}


def commands(group: Any, prefix: str = "") -> dict[str, Any]:
    """Every leaf command of the CLI by its full name ("import geolife")."""
    found = {}
    for name, cmd in getattr(group, "commands", {}).items():
        if hasattr(cmd, "commands"):
            found.update(commands(cmd, f"{prefix}{name} "))
        else:
            found[f"{prefix}{name}"] = cmd
    return found


def test_the_documented_commands_exist_and_all_take_store() -> None:
    cmds = commands(typer.main.get_command(app))
    assert {"import geolife", "import events", "simulate", "status", "quarantine",
            "facts build", "facts list", "export stops"} <= set(cmds)
    for name, cmd in cmds.items():
        opts = {o for p in cmd.params for o in getattr(p, "opts", [])}
        assert "--store" in opts, f"`parkloop {name}` lacks --store"
        assert cmd.help, f"`parkloop {name}` has no help"


def test_help_everywhere() -> None:
    assert "simulate" in run_cli("--help", process=True).stdout  # the entry point itself
    out = run_cli("import", "geolife", "--help").stdout
    assert "--store" in out
    assert "PARKLOOP_STORE" in out


def test_import_geolife_then_status(tmp_path: Path, geolife_mini: Path) -> None:
    store = tmp_path / "s"
    first = json.loads(run_cli("import", "geolife", geolife_mini, "--json", store=store).stdout)
    assert first["events_stored"] == {"fix": 286_384, "label": 29}
    assert first["ok"]
    again = json.loads(run_cli("import", "geolife", geolife_mini, "--json", store=store).stdout)
    assert again["batches_stored"] == 0
    assert again["events_stored"] == {}
    status = json.loads(run_cli("status", "--json", store=store).stdout)
    raw = status["raw"]
    assert set(raw["events"]) == STATUS_KEYS
    assert raw["events"]["fix"] == 286_384
    assert raw["events"]["label"] == 29
    assert raw["batches"] == first["batches_stored"]
    assert raw["quarantined"] == 0
    human = run_cli("status", store=store).stdout
    assert "286,384" in human


def test_import_events_keeps_good_events_and_quarantines_the_rest(tmp_path: Path) -> None:
    t = "2026-01-05T08:00:00Z"
    lines = [
        {"device_id": "phone-1", "batch_id": "b1", "events": [
            {"kind": "fix", "t": t, "lat": 52.52, "lon": 13.40},
            {"kind": "fix", "t": t, "lat": 252.52, "lon": 13.40},
            {"kind": "teleport", "t": t},
            {"kind": "activity", "t": t, "activity": "on_foot", "confidence": 0.9}]},
        {"device_id": "phone-1", "batch_id": "b2", "events": [
            {"kind": "feedback", "t": t, "parked_at": t, "lat": 52.5, "lon": 13.4,
             "parked": True}]},
    ]
    path = tmp_path / "batches.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in lines) + "\n{broken\n")
    store = tmp_path / "s"
    proc = run_cli("import", "events", path, "--json", store=store, check=False)
    assert proc.returncode == 1  # one line could not be read: said, and exit code says so
    report = json.loads(proc.stdout)
    assert report["events_stored"] == {"fix": 1, "activity": 1, "feedback": 1}
    assert report["quarantined_by_reason"] == {"lat_out_of_range": 1, "unknown_kind": 1}
    assert report["set_aside"][0].startswith(f"{path}:3: not JSON")
    raw = json.loads(run_cli("status", "--json", store=store).stdout)["raw"]
    assert raw["quarantined"] == 2
    assert raw["events"]["feedback"] == 1
    listed = json.loads(run_cli("quarantine", "--reason", "lat_out_of_range", "--json",
                                store=store).stdout)
    assert [(r["device_id"], r["batch_id"], r["seq"]) for r in listed] == [("phone-1", "b1", 1)]
    assert json.loads(listed[0]["payload"])["lat"] == 252.52
    # retrying the whole file stores nothing new
    path.write_text("\n".join(json.dumps(x) for x in lines))
    again = json.loads(run_cli("import", "events", path, "--json", store=store).stdout)
    assert (again["batches_stored"], again["batches_duplicate"]) == (0, 2)


def test_reused_batch_id_is_refused(tmp_path: Path) -> None:
    store = tmp_path / "s"
    path = tmp_path / "b.json"
    fix = {"kind": "fix", "t": 1_767_600_000_000, "lat": 1.0, "lon": 2.0}
    path.write_text(json.dumps({"device_id": "p", "batch_id": "b", "events": [fix]}))
    run_cli("import", "events", path, store=store)
    path.write_text(json.dumps({"device_id": "p", "batch_id": "b", "events": [fix, fix]}))
    proc = run_cli("import", "events", path, store=store, check=False)
    assert proc.returncode == 1
    assert "p/b" in proc.stderr


def one_line_error(proc: object) -> str:
    assert getattr(proc, "returncode", 0) != 0
    err = getattr(proc, "stderr", "").strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    return err


def test_bad_input_gets_one_line_and_nonzero_exit(tmp_path: Path) -> None:
    missing = run_cli("import", "geolife", tmp_path / "nope.zip", store=tmp_path / "s",
                      check=False, process=True)  # and from a process's stderr
    assert "does not exist" in one_line_error(missing)
    assert not (tmp_path / "s").exists(), "a failed import must not leave a store behind"
    not_zip = tmp_path / "x.zip"
    not_zip.write_text("not a zip")
    bad = run_cli("import", "geolife", not_zip, store=tmp_path / "s", check=False)
    assert "neither a zip" in one_line_error(bad)
    no_store = run_cli("status", store=tmp_path / "empty", check=False)
    assert "no parkloop store" in one_line_error(no_store)
    scenario = run_cli("simulate", "--scenario", "bogus", store=tmp_path / "s", check=False)
    assert scenario.returncode == 2
    assert "default" in scenario.stderr


def test_store_from_environment(tmp_path: Path) -> None:
    store = tmp_path / "from-env"
    run_cli("simulate", "--devices", "1", "--days", "1", env={"PARKLOOP_STORE": str(store)})
    assert (store / "parkloop.duckdb").is_file()
    out = run_cli("status", "--json", env={"PARKLOOP_STORE": str(store)}).stdout
    assert json.loads(out)["raw"]["events"]["fix"] > 0


def test_a_store_in_use_is_reported_not_crashed_on(tmp_path: Path) -> None:
    with Store.create(tmp_path / "s"):
        proc = run_cli("status", store=tmp_path / "s", check=False, process=True)
    assert "in use by another parkloop process" in one_line_error(proc)


def test_simulate_then_status_is_the_main_job(tmp_path: Path) -> None:
    store = tmp_path / "s"
    run_cli("simulate", "--devices", "2", "--days", "2", "--seed", "3", store=store)
    assert json.loads(run_cli("status", "--json", store=store).stdout)["facts"] == {}
    run_cli("facts", "build", store=store)
    status = json.loads(run_cli("status", "--json", store=store).stdout)
    (version,) = status["facts"]
    assert version.startswith("v1@")
    assert status["facts"][version]["stops"] > 0
    raw = status["raw"]
    assert raw["devices"] == 2
    assert raw["events"]["fix"] > 1000
    assert raw["events"]["label"] >= 0
    assert raw["quarantined"] == 0
