"""``parkloop model train`` and ``parkloop export parked`` end to end, as a user runs them, on a
copy of the simulated store: train, register, publish, export, check the events against the
simulator's ground truth, then add a phone and export again without retraining.

The session's simulated store has too few labels to train on (its labellers stated one car
leg: cross-validation cannot even calibrate), so the module adds ten people who label what
they do, and trains a small store spec (three folds, rule and logistic learners, the shipped
spec's gate) so that one training fits the time budget. One trained store serves every test.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from parkloop.interpret.parking import EXPORT_COLUMNS
from parkloop.simulate import simulate
from parkloop.store import Store
from tests.conftest import run_cli, seed_registry
from tests.test_cli import one_line_error

SPEC = """\
# the shipped spec's features and gate, trained lighter: three folds, no boosting
description = "parked, small and quick: for tests"
rules = "v1"
features = [
    "leg_duration_s", "leg_distance_m", "leg_mean_speed_mps", "leg_max_speed_mps",
    "leg_standing_share", "leg_n_halts", "away_m", "max_away_m", "drives_on",
    "leg_p85_speed_mps", "leg_p95_speed_mps", "leg_last_speed_mps",
    "drives_before", "drives_started_near_before", "drives_ended_near_before",
]

[[exclude]]
feature = "leg_p95_speed_mps"
above = 70.0
reason = "faster than any road vehicle"

[learners.rule]
kind = "rule"
feature = "leg_p85_speed_mps"
threshold = 12.0

[learners.logistic]
kind = "logistic"
C = 0.3

[train]
folds = 3
calibration = "none"

[gate]
min_f1 = 0.60
min_pr_auc = 0.60
"""

MATCH_S, MATCH_M = 300, 300.0
"""an exported event finds a true parking event this close in time (s) and space (m)"""

RECALL_BOUND = 0.6
"""exported events find at least this share of the true parking events (measured: 54 of 73,
0.74; choosing as many leg ends at random finds 0.37)"""

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Trained:
    store: Path
    result: dict[str, Any]
    export: Path


@pytest.fixture(scope="module")
def trained(sim_store_path: Path, tmp_path_factory: pytest.TempPathFactory,
            mlflow_db: Path) -> Trained:
    root = tmp_path_factory.mktemp("model-train")
    store = root / "store"
    shutil.copytree(sim_store_path, store)
    with Store.open(store) as s:
        simulate(s, devices=10, days=3, seed=12, label_share=1.0)
    seed_registry(store, mlflow_db)
    (store / "specs").mkdir()
    (store / "specs" / "quick.toml").write_text(SPEC)
    proc = run_cli("model", "train", "--spec", "quick", "--publish", "--json", store=store,
                   check=False)
    # exit 1 would mean "not published: gate failed" (the version stays registered)
    assert proc.returncode == 0, proc.stderr[-2000:]
    export = root / "parked.csv"
    run_cli("export", "parked", "--out", export, store=store)
    return Trained(store, strict_json(proc.stdout), export)


def strict_json(text: str) -> Any:
    """JSON as a strict reader (jq, JavaScript) takes it: NaN and Infinity are not JSON."""
    def refuse(constant: str) -> None:
        raise AssertionError(f"{constant} in --json output")

    return json.loads(text, parse_constant=refuse)


def read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def epoch_ms(iso: str) -> int:
    at = datetime.fromisoformat(iso)
    assert at.utcoffset() == timedelta(0), iso
    return (at - EPOCH) // timedelta(milliseconds=1)


def as_events(rows: list[dict[str, str]]) -> pa.Table:
    return pa.table({"device_id": pa.array([r["device_id"] for r in rows], pa.string()),
                     "t_ms": pa.array([epoch_ms(r["parked_at"]) for r in rows], pa.int64()),
                     "lat": pa.array([float(r["lat"]) for r in rows], pa.float64()),
                     "lon": pa.array([float(r["lon"]) for r in rows], pa.float64())})


_NEAR = f"""abs(e.t_ms - t.parked_at_ms) <= {MATCH_S * 1000}
    AND 2 * 6371000.0 * asin(sqrt(pow(sin(radians(t.lat - e.lat) / 2), 2)
        + cos(radians(e.lat)) * cos(radians(t.lat)) * pow(sin(radians(t.lon - e.lon) / 2), 2)))
        <= {MATCH_M}"""


def found_truth(store: Path, events: pa.Table, devices: list[str] | None = None
                ) -> tuple[int, int]:
    """(true parking events, how many of them an event finds): ground truth, read here only."""
    with Store.open(store, read_only=True) as s:
        s.con.register("_events", events)
        return s.con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE EXISTS (
                SELECT 1 FROM _events e WHERE e.device_id = t.device_id AND {_NEAR}))
            FROM truth.parking t
            WHERE $devices IS NULL OR list_contains($devices, t.device_id)""",
                               {"devices": devices}).fetchall()[0]


def test_train_registers_publishes_and_reports_lineage(trained: Trained) -> None:
    r = trained.result
    assert r["version"] == "1"
    assert r["published"] is True
    assert r["gate"]["passed"] is True
    assert r["chosen"] in {"rule", "logistic"}
    for key in ("f1", "pr_auc", "e2e_f1", "nested_f1", "e2e_recall", "threshold"):
        assert 0.0 <= r["metrics"][key] <= 1.0, key
    assert r["metrics"]["n_people"] >= 10
    lineage = r["lineage"]
    assert re.fullmatch(r"v1@[0-9a-f]{12}", lineage["rules_version"])
    assert re.fullmatch(r"[0-9a-f]{64}", lineage["label_set_hash"])
    assert lineage["spec"].startswith("quick@")
    assert lineage["learner"] == r["chosen"]
    with Store.open(trained.store, read_only=True) as s:
        assert int(lineage["raw_watermark"]) == s.scalar("SELECT max(batch_no) FROM raw_batch")
        assert s.scalar("SELECT raw_watermark FROM facts_build WHERE rules_version = ?",
                        [lineage["rules_version"]]) == int(lineage["raw_watermark"])
    assert Path(r["report"]).is_file()


def test_the_registered_artifacts_hold_model_spec_labels_report_and_plots(
        trained: Trained) -> None:
    from parkloop.interpret.model import ParkedModel
    from parkloop.interpret.registry import Registry

    r = trained.result
    directory = Registry(trained.store).artifacts(r["version"])
    files = {p.name for p in directory.iterdir()}
    assert {"model.joblib", "spec.toml", "labels.parquet", "report.md", "pr_curve.png",
            "calibration.png", "confusion_by_mode.png", "importance.png"} <= files
    for png in ("pr_curve.png", "calibration.png", "confusion_by_mode.png", "importance.png"):
        assert (directory / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (directory / "spec.toml").read_text() == SPEC
    model = ParkedModel.load(directory)
    assert model.rules_version == r["lineage"]["rules_version"]
    assert model.spec == r["lineage"]["spec"]
    assert model.threshold == pytest.approx(r["metrics"]["threshold"])
    labels = pq.read_table(directory / "labels.parquet")
    assert labels.num_rows == int(r["lineage"]["labels"])
    assert r["lineage"]["rules_version"] in (directory / "report.md").read_text()


def test_list_and_status_name_the_champion(trained: Trained) -> None:
    listed = strict_json(run_cli("model", "list", "--json", store=trained.store).stdout)
    assert [(v["version"], v["is_champion"]) for v in listed] == [("1", True)]
    tags = listed[0]["tags"]
    for key in ("rules_version", "raw_watermark", "label_set_hash"):
        assert tags[key] == trained.result["lineage"][key]
    assert listed[0]["metrics"]["f1"] == pytest.approx(trained.result["metrics"]["f1"])
    status = strict_json(run_cli("status", "--json", store=trained.store).stdout)
    assert status["models"]["champion"] == "1"


def test_export_parked_writes_the_documented_csv(trained: Trained) -> None:
    from parkloop.interpret.model import ParkedModel
    from parkloop.interpret.registry import Registry

    header, rows = read_csv(trained.export)
    assert tuple(header) == EXPORT_COLUMNS
    assert header == ["device_id", "parked_at", "lat", "lon", "p_parked", "model_version",
                      "rules_version"]
    assert rows, "no parking events exported"
    threshold = ParkedModel.load(Registry(trained.store).artifacts("1")).threshold
    rules = trained.result["lineage"]["rules_version"]
    with Store.open(trained.store, read_only=True) as s:
        devices = {d for (d,) in s.con.sql("SELECT DISTINCT device_id FROM raw_fix").fetchall()}
        parked = s.scalar("SELECT count(*) FROM interp_leg_end WHERE model_version = '1' "
                          "AND parked")
    assert len(rows) == parked
    for row in rows:
        assert row["device_id"] in devices
        assert (row["model_version"], row["rules_version"]) == ("1", rules)
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", row["parked_at"])
        epoch_ms(row["parked_at"])
        assert -90 <= float(row["lat"]) <= 90
        assert -180 <= float(row["lon"]) <= 180
        assert threshold <= float(row["p_parked"]) <= 1.0
    keys = [(r["device_id"], epoch_ms(r["parked_at"])) for r in rows]
    assert keys == sorted(set(keys)), "one row per parking event, by device and time"


def test_exported_events_find_the_true_parking_events(trained: Trained) -> None:
    _, rows = read_csv(trained.export)
    n_true, found = found_truth(trained.store, as_events(rows))
    with Store.open(trained.store, read_only=True) as s:
        ends = s.con.sql("SELECT device_id, ended_ms AS t_ms, lat, lon FROM facts_leg_end "
                         "WHERE rules_version = $rv",
                         params={"rv": trained.result["lineage"]["rules_version"]}
                         ).to_arrow_table()
    # choosing as many leg ends at random finds this share of what all of them find
    chance = found_truth(trained.store, ends)[1] / n_true * len(rows) / ends.num_rows
    recall = found / n_true
    assert n_true >= 40
    assert recall >= RECALL_BOUND, f"recall {recall:.3f} ({found}/{n_true}), chance {chance:.3f}"
    assert recall >= chance + 0.2


def test_exporting_again_without_changes_writes_the_same_rows(trained: Trained,
                                                              tmp_path: Path) -> None:
    again = tmp_path / "again.csv"
    run_cli("export", "parked", "--out", again, store=trained.store)
    assert again.read_bytes() == trained.export.read_bytes()


def test_a_new_phone_is_exported_without_retraining(trained: Trained, tmp_path: Path) -> None:
    from parkloop.interpret.registry import Registry

    store = tmp_path / "store"
    shutil.copytree(trained.store, store)
    added = json.loads(run_cli("simulate", "--devices", "1", "--days", "2", "--seed", "17",
                               "--label-share", "0", "--json", store=store).stdout)
    assert added["parking_events"] > 0  # this phone's owner drives
    run_cli("facts", "build", store=store)
    out = tmp_path / "parked.csv"
    run_cli("export", "parked", "--out", out, store=store)

    _, before = read_csv(trained.export)
    _, after = read_csv(out)
    new = [r for r in after if r["device_id"] == "sim-default-s17-0000"]
    assert new, "the new phone's parking events are missing"
    assert [r for r in after if r["device_id"] != "sim-default-s17-0000"] == before
    assert {r["model_version"] for r in after} == {"1"}
    assert [v.version for v in Registry(store).versions()] == ["1"]  # nothing retrained
    n_true, found = found_truth(store, as_events(new), ["sim-default-s17-0000"])
    assert found >= 1, f"none of the new phone's {n_true} parking events was found"


def test_bad_input_exits_1_with_one_line(sim_store_path: Path, tmp_path: Path) -> None:
    untrained = tmp_path / "untrained"
    shutil.copytree(sim_store_path, untrained)
    unlabelled = tmp_path / "unlabelled"
    with Store.create(unlabelled) as s:
        simulate(s, devices=2, days=1, seed=3, label_share=0.0)
    calls: list[tuple[Any, ...]] = [
        ("export", "parked", "--out", tmp_path / "p.csv", "--store", untrained),
        ("model", "train", "--spec", "nope", "--store", untrained),
        ("model", "train", "--store", unlabelled),
    ]
    no_champion, no_spec, no_labels = (run_cli(*a, check=False) for a in calls)
    for proc in (no_champion, no_spec, no_labels):
        assert proc.returncode == 1, proc.stderr
    assert "model train" in one_line_error(no_champion)
    assert not (tmp_path / "p.csv").exists()
    line = one_line_error(no_spec)
    assert "no model spec 'nope'" in line
    assert "parked" in line  # what there is
    assert "cannot train" in one_line_error(no_labels)
    assert not (unlabelled / "registry").exists(), "a failed training registered something"
