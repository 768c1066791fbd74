"""Benchmark: how well leg-end features separate parking from other vehicle ends.

Imports geolife-dev.zip (or uses ``--store``), builds facts, labels leg ends from the raw
labels (car end = parked; taxi, bus, ... = not), and cross-validates with people held out: a
one-feature rule baseline, logistic regression and gradient boosting. Pooled out-of-fold
precision, recall, F1 of the parked class and PR-AUC; the share of each stated mode called
parked; F1 at the threshold best on the pooled scores and the honest nested F1 (each fold at
the threshold best on the other folds). ``--report DIR`` also writes the markdown report with
its plots (and computes permutation importances, which takes longer).

    python bench/parking_cv.py --store /path/to/store/with/geolife-dev [--report DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
from pathlib import Path

from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.dataset import training_set
from parkloop.interpret.evaluate import (
    best_threshold,
    cross_validate,
    nested_threshold_f1,
    pooled,
)
from parkloop.interpret.report import write_report
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife" / \
    "geolife-dev.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="a store holding geolife-dev already")
    parser.add_argument("--rules", default="v1")
    parser.add_argument("--report", type=Path, help="also write the report into this folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "store"
        with Store.create(path) as store:
            if args.store is None:
                import_geolife(store, DEV)
            rules = load_rules(args.rules, path)
            build(store, rules)
            data = training_set(store, rules.identity)
            identity = rules.identity
    print(f"{len(data)} labelled leg ends, {int(data.y.sum())} parked, "
          f"{len(set(data.groups.tolist()))} people\n")
    speed = data.features.index("leg_max_speed_mps")
    learners = {
        "rule: max speed >= 12 m/s": lambda: ThresholdRule(speed, 12.0),
        "logistic regression": lambda: make_pipeline(
            SimpleImputer(strategy="median"), StandardScaler(),
            LogisticRegression(max_iter=2000, class_weight="balanced")),
        "gradient boosting": lambda: HistGradientBoostingClassifier(
            max_iter=200, learning_rate=0.05, class_weight="balanced", random_state=0),
    }
    print("| learner | n | precision | recall | F1 | PR-AUC | fold F1 | threshold | nested F1 |")
    print("|---|---|---|---|---|---|---|---|---|")
    candidates = []
    for name, make in learners.items():
        scores = cross_validate(data, name, make, importance=args.report is not None)
        if not name.startswith("rule"):  # the rule keeps its own threshold
            scores = dataclasses.replace(scores, threshold=best_threshold(data.y, scores.p))
        candidates.append(scores)
        m = pooled(data, scores)
        spread = f"{min(m.fold_f1):.2f}-{max(m.fold_f1):.2f}"
        print(f"| {name} | {m.n} | {m.precision:.3f} | {m.recall:.3f} | {m.f1:.3f} | "
              f"{m.pr_auc:.3f} | {spread} | {scores.threshold:.3f} | "
              f"{nested_threshold_f1(data, scores):.3f} |")
    print()
    for scores in candidates:
        m = pooled(data, scores)
        shares = ", ".join(f"{mode} {hit / total:.0%}"
                           for mode, (hit, total) in m.called_parked_by_mode.items())
        print(f"- {scores.name}: called parked by stated mode: {shares}")
    if args.report is not None:
        path = write_report(args.report, data, candidates, "gradient boosting",
                            title="Parking on GeoLife leg ends (bench)",
                            lineage={"rules version": identity})
        print(f"\nreport: {path}")


if __name__ == "__main__":
    main()
