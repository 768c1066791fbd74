"""The training report: markdown a person reads, with valid PNG plots beside it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.dataset import TrainingSet
from parkloop.interpret.evaluate import Scores, cross_validate
from parkloop.interpret.report import PLOTS, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
LINEAGE = {"rules version": "v1:abc123", "raw watermark": "batch 42", "label set": "f00d"}
END_TO_END = {"parkings found": 0.81, "median error m": 35.5, "devices": 6,
              "per_person": [{"person": "p0", "found": 3, "of": 4},
                             {"person": "p1", "found": 2, "of": 2, "note": "a|b"}]}


@pytest.fixture(scope="module")
def data() -> TrainingSet:
    """Six people, two informative features (one with gaps), modes car/taxi/bus/walk."""
    rng = np.random.default_rng(7)
    n = 6 * 50
    modes = rng.choice(np.array(["car", "taxi", "bus", "walk"], dtype=object), n,
                       p=[0.4, 0.25, 0.2, 0.15])
    y = modes == "car"
    speed = 8 + 6 * y + 3 * rng.normal(size=n)
    dwell = 1.5 * y + rng.normal(size=n)
    dwell[rng.random(n) < 0.1] = np.nan
    groups = np.repeat(np.array([f"person-{i}" for i in range(6)], dtype=object), 50)
    return TrainingSet(np.column_stack([speed, dwell]), y, groups, modes,
                       ("leg_max_speed_mps", "dwell_z"))


@pytest.fixture(scope="module")
def candidates(data: TrainingSet) -> list[Scores]:
    return [
        cross_validate(data, "rule: max speed >= 12 m/s", lambda: ThresholdRule(0, 12.0)),
        cross_validate(data, "logistic regression", lambda: make_pipeline(
            SimpleImputer(strategy="median"), LogisticRegression())),
    ]


def _write(out: Path, data: TrainingSet, candidates: list[Scores]) -> Path:
    return write_report(out, data, candidates, "logistic regression", title="Parking model v7",
                        lineage=LINEAGE, end_to_end=END_TO_END)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory, data: TrainingSet,
            candidates: list[Scores]) -> Path:
    out = tmp_path_factory.mktemp("report") / "r"
    path = _write(out, data, candidates)
    assert path == out / "report.md"
    return path


def test_report_has_the_baseline_the_choice_and_every_person(written: Path) -> None:
    md = written.read_text()
    assert md.startswith("# Parking model v7\n")
    assert "| rules version | v1:abc123 |" in md
    assert "| rule: max speed >= 12 m/s (baseline) |" in md
    assert "| **logistic regression** (chosen) |" in md
    assert "nested F1" in md
    assert "**car vs taxi**" in md
    assert "**car vs bus**" in md
    assert "| person | labelled ends | car ends | precision | recall | F1 |" in md
    for i in range(6):
        assert f"| person-{i} | 50 |" in md
    assert "| parkings found | 0.810 |" in md
    assert "| person | found | of | note |" in md
    assert "| p1 | 2 | 2 | a\\|b |" in md
    assert "## How to read this" in md
    for name in PLOTS:
        assert f"]({name})" in md
        png = (written.parent / name).read_bytes()
        assert png.startswith(PNG_MAGIC)
        assert len(png) > 5_000


def test_report_is_deterministic(tmp_path: Path, written: Path, data: TrainingSet,
                                 candidates: list[Scores]) -> None:
    again = _write(tmp_path, data, candidates)
    for name in ["report.md", *PLOTS]:
        assert (again.parent / name).read_bytes() == (written.parent / name).read_bytes()


def test_end_to_end_is_optional(tmp_path: Path, data: TrainingSet,
                                candidates: list[Scores]) -> None:
    """Without end-to-end figures the section is left out."""
    md = write_report(tmp_path, data, candidates, "logistic regression", title="t",
                      lineage={}).read_text()
    assert "End to end" not in md


def test_report_refuses_an_unknown_choice(tmp_path: Path, data: TrainingSet,
                                          candidates: list[Scores]) -> None:
    with pytest.raises(ValueError, match="chosen 'gbm' is not among"):
        write_report(tmp_path, data, candidates, "gbm", title="t", lineage={})
