"""Benchmark: how well leg-end features separate parking from other vehicle ends.

Imports geolife-dev.zip (or uses ``--store``), builds facts, labels leg ends from the raw
labels (car end = parked; taxi, bus, ... = not), and cross-validates with people held out: a
one-feature rule baseline, logistic regression and gradient boosting. Pooled out-of-fold
precision, recall, F1 of the parked class and PR-AUC; the share of each stated mode called
parked. A first look for issue 4, not the model.

    python bench/parking_cv.py --store /path/to/store/with/geolife-dev
"""

from __future__ import annotations

import argparse
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
from parkloop.interpret.evaluate import grouped_cv
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife" / \
    "geolife-dev.zip"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="a store holding geolife-dev already")
    parser.add_argument("--rules", default="v1")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "store"
        with Store.create(path) as store:
            if args.store is None:
                import_geolife(store, DEV)
            rules = load_rules(args.rules, path)
            build(store, rules)
            data = training_set(store, rules.identity)
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
    print("| learner | n | precision | recall | F1 | PR-AUC | fold F1 |")
    print("|---|---|---|---|---|---|---|")
    reports = [grouped_cv(data, name, make) for name, make in learners.items()]
    for r in reports:
        print(r.row())
    print()
    for r in reports:
        shares = ", ".join(f"{m} {v:.0%}" for m, v in r.called_parked_by_mode.items())
        print(f"- {r.name}: called parked by stated mode: {shares}")


if __name__ == "__main__":
    main()
