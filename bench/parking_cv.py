"""Benchmark: the parked model's quality on GeoLife, people held out, leg level and end to end.

Imports geolife-dev.zip into a fresh store (or uses ``--store``), builds the spec's facts,
labels leg ends from the raw labels, and runs exactly what `parkloop model train` evaluates:
every learner of the spec cross-validated with people held out (pooled out of fold), the
chosen one scored on every leg end of the held-out people and judged end to end against all
their labelled car-segment ends. Prints the figures the model's targets are set in;
``--report DIR`` also writes the markdown report with its plots.

    python bench/parking_cv.py [--store STORE] [--spec parked] [--report DIR]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.evaluate import metrics
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.report import write_report
from parkloop.interpret.spec import load_spec
from parkloop.interpret.train import DOMINANT_PEOPLE, evaluate
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife" / \
    "geolife-dev.zip"
TARGETS = {"leg F1 (label ends)": 0.80, "leg PR-AUC (label ends)": 0.85, "e2e F1": 0.70,
           "e2e F1 others": 0.55}
"""the model's targets; leg-level figures at the labels' ends"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", type=Path, help="a store holding geolife-dev already")
    parser.add_argument("--spec", default="parked")
    parser.add_argument("--report", type=Path, help="write the markdown report here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or Path(tmp) / "store"
        with Store.create(path) as store:
            if args.store is None:
                import_geolife(store, DEV)
            spec = load_spec(args.spec, path)
            rules = load_rules(spec.rules, path)
            build(store, rules)
            start = time.perf_counter()
            labels = leg_end_labels(store, rules.identity)
            result = evaluate(store, spec, rules.identity, labels,
                              step=lambda s: print(f"  {s}", flush=True))
            seconds = time.perf_counter() - start
    data, m, e2e = result.data, result.metrics, result.end_to_end
    at_end = data.sources != "inside"
    print(f"\n{len(data)} labelled leg ends ({int(at_end.sum())} at a label's end), "
          f"{int(data.y.sum())} parked, {len(set(data.groups.tolist()))} people; "
          f"evaluated in {seconds:.0f} s\n")
    print("| learner | precision | recall | F1 | nested F1 | PR-AUC | F1, ends only "
          "| PR-AUC, ends only |")
    print("|---|---|---|---|---|---|---|---|")
    for c in result.candidates:
        mc = metrics(data.y, c.p, c.threshold, c.fold, data.modes)
        me = metrics(data.y[at_end], c.p[at_end], c.threshold)
        chosen = " (chosen)" if c.name == result.chosen.name else ""
        print(f"| {c.name}{chosen} | {mc.precision:.3f} | {mc.recall:.3f} | {mc.f1:.3f} | "
              f"{result.figures[c.name]['nested_f1']:.3f} | {mc.pr_auc:.3f} | {me.f1:.3f} | "
              f"{me.pr_auc:.3f} |")
    others = e2e["without_dominant"]
    print(f"\nend to end ({result.chosen.name} at {result.chosen.threshold:.3f}): "
          f"precision {e2e['precision']:.3f}, recall {e2e['recall']:.3f}, F1 {e2e['f1']:.3f} "
          f"({e2e['found']} of {e2e['car_ends']} car ends found, {e2e['false_alarms']} "
          f"false alarms); without {' and '.join(sorted(DOMINANT_PEOPLE))}: precision "
          f"{others['precision']:.3f}, recall {others['recall']:.3f}, F1 {others['f1']:.3f}")
    print("\n| person | car ends | found | events | false alarms | F1 |")
    print("|---|---|---|---|---|---|")
    for r in e2e["per_person"]:
        if r["car_ends"] or r["false_alarms"]:
            print(f"| {r['device_id']} | {r['car_ends']} | {r['found']} | {r['events']} | "
                  f"{r['false_alarms']} | {r['f1']:.2f} |")
    got = {"leg F1 (label ends)": m["f1_ends"], "leg PR-AUC (label ends)": m["pr_auc_ends"],
           "e2e F1": m["e2e_f1"], "e2e F1 others": m["e2e_f1_others"]}
    print("\n" + ", ".join(f"{k} {got[k]:.3f} (target {v})" for k, v in TARGETS.items()))
    if args.report:
        write_report(args.report, data, result.candidates, result.chosen.name,
                     title=f"{spec.identity} on {rules.identity}",
                     lineage={"rules_version": rules.identity, "spec": spec.identity},
                     end_to_end={k: v for k, v in e2e.items() if k != "without_dominant"})
        print(f"report: {args.report / 'report.md'}")


if __name__ == "__main__":
    main()
