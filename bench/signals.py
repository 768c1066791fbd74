"""Benchmark: the phone's own signals. Parking calls on simulated phones whose car reports its
Bluetooth link, beside GPS-only people, against the simulator's ground truth.

Simulates people of the default scenario into a fresh store (half of the cars report their
link), builds the shipped spec's facts, evaluates the spec as `parkloop model train` does
(learners cross-validated with people held out, thresholds and policy chosen), then calls every
leg end of every person with the fold model never trained on them
(:func:`parkloop.interpret.heldout.held_out_calls`; people who label nothing are spread over
the folds) and scores the calls against ``truth.parking`` by kind of person. Then profiles
what the link people's calls missed: no leg end near the true parking, or a leg end the model
did not call (with its link features), and the false calls.

    python bench/signals.py [--devices 40] [--days 14] [--seed 0] [--label-share 0.5]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

from parkloop.facts.build import build
from parkloop.facts.rules import load_rules
from parkloop.interpret.heldout import HeldOut, held_out_calls
from parkloop.interpret.labels import leg_end_labels
from parkloop.interpret.spec import load_spec
from parkloop.interpret.train import evaluate
from parkloop.simulate import simulate
from parkloop.simulate.truth import parking_scores
from parkloop.store import Store

TARGET_LINK_F1 = 0.95
NEAR = """abs(e.ended_ms - t.parked_at_ms) <= 300000
    AND 2 * 6371000.0 * asin(sqrt(pow(sin(radians(t.lat - e.lat) / 2), 2)
        + cos(radians(e.lat)) * cos(radians(t.lat))
        * pow(sin(radians(t.lon - e.lon) / 2), 2))) <= 300"""
"""a leg end and a true parking match: as :func:`parking_scores` matches calls"""


def groups(store: Store) -> dict[str, list[str]]:
    """The simulated people by what their phone says about their car."""
    rows = store.con.execute("SELECT device_id, owns_car, vehicle_link FROM truth.devices "
                             "ORDER BY device_id").fetchall()
    return {"car with a link": [d for d, _, link in rows if link],
            "car, GPS only": [d for d, car, link in rows if car and not link],
            "no car": [d for d, car, _ in rows if not car]}


def table(store: Store, held: HeldOut, days: int) -> dict[str, dict[str, float]]:
    calls = held.calls()
    out = {}
    print("| people | n | true parkings | calls | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|")
    for name, devices in groups(store).items():
        s = parking_scores(store, calls, devices=devices)
        n_true = store.con.execute(
            "SELECT count(*) FROM truth.parking WHERE list_contains($d, device_id)",
            {"d": devices}).fetchone()
        n_calls = int(np.isin(np.asarray(calls.column("device_id").to_pylist(), object),
                              devices).sum())
        out[name] = {**s, "n": len(devices), "calls": n_calls}
        if name == "no car":
            print(f"| {name} | {len(devices)} | 0 | {n_calls} "
                  f"({n_calls / max(1, len(devices) * days):.2f} a person-day) | | | |")
        else:
            print(f"| {name} | {len(devices)} | {n_true[0] if n_true else 0} | {n_calls} | "
                  f"{s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} |")
    return out


def profile(store: Store, held: HeldOut, devices: list[str]) -> None:
    """Where the link people's calls go wrong."""
    con = store.con.cursor()
    ends = held.ends.select(["device_id", "ended_ms", "lat", "lon", "link_seen",
                             "link_disconnect_near_end", "said_car_before",
                             "said_other_before"])
    con.register("_ends", ends.append_column("p", pa.array(held.p)).append_column(
        "called", pa.array(held.called)).append_column(
        "row_no", pa.array(np.arange(ends.num_rows))))
    con.register("_who", pa.table({"device_id": pa.array(devices, pa.string())}))
    missed = con.execute(f"""
        WITH t AS (SELECT t.* FROM truth.parking t JOIN _who USING (device_id)),
        m AS (SELECT t.device_id, t.parked_at_ms,
                     max(e.called::INT) AS called, count(e.row_no) AS candidates,
                     max(e.p) AS p, max(e.link_disconnect_near_end::INT) AS disconnect,
                     min(e.link_seen::INT) AS seen
              FROM t LEFT JOIN _ends e ON e.device_id = t.device_id AND {NEAR}
              GROUP BY ALL)
        SELECT count(*) FILTER (WHERE candidates = 0),
               count(*) FILTER (WHERE candidates > 0 AND called = 0),
               count(*) FILTER (WHERE candidates > 0 AND called = 0 AND disconnect = 1),
               count(*) FILTER (WHERE candidates > 0 AND called = 0 AND seen = 0),
               list(round(p, 2)) FILTER (WHERE candidates > 0 AND called = 0),
               count(*) FROM m""").fetchone()
    false = con.execute(f"""
        SELECT count(*), count(*) FILTER (WHERE e.link_disconnect_near_end),
               count(*) FILTER (WHERE NOT e.link_seen), list(round(e.p, 2))
        FROM _ends e JOIN _who USING (device_id)
        WHERE e.called AND NOT EXISTS (SELECT 1 FROM truth.parking t
                                      WHERE t.device_id = e.device_id AND {NEAR})""").fetchone()
    con.close()
    if missed is None or false is None:
        return
    print(f"\nlink people: {missed[5]} true parkings; missed {missed[0] + missed[1]}: "
          f"{missed[0]} without a leg end within 300 s and 300 m, {missed[1]} with one not "
          f"called ({missed[2]} of them with a link disconnect near the end, {missed[3]} "
          f"before the phone's first link event; p = {missed[4]})")
    print(f"false calls: {false[0]} ({false[1]} with a link disconnect near the end, "
          f"{false[2]} before the phone's first link event; p = {false[3]})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, default=40)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--label-share", type=float, default=0.5)
    parser.add_argument("--spec", default="parked")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Store.create(Path(tmp) / "store") as store:
        start = time.perf_counter()
        simulate(store, devices=args.devices, days=args.days, seed=args.seed,
                 label_share=args.label_share)
        spec = load_spec(args.spec, store.path)
        rules = load_rules(spec.rules, store.path)
        build(store, rules)
        built = time.perf_counter()
        labels = leg_end_labels(store, rules.identity)
        result = evaluate(store, spec, rules.identity, labels, end_to_end=False,
                          step=lambda s: print(f"  {s}", flush=True))
        held = held_out_calls(store, spec, result, rules.identity)
        done = time.perf_counter()
        print(f"\n{args.devices} people x {args.days} days (seed {args.seed}, label share "
              f"{args.label_share}): simulated and built in {built - start:.0f} s, evaluated "
              f"in {done - built:.0f} s; {len(result.data)} labelled leg ends; chosen "
              f"{result.chosen.name} at {result.chosen.threshold:.3f}, strangers at "
              f"{float(spec.policy.stranger_odds):.2f} x the threshold's odds; the model reads "
              f"{', '.join(f for f in result.data.features if 'link' in f or 'activity' in f)}"
              "\n")
        scores = table(store, held, args.days)
        profile(store, held, groups(store)["car with a link"])
    f1 = scores["car with a link"]["f1"]
    print(f"\ncar with a link: F1 {f1:.3f} (target >= {TARGET_LINK_F1}): "
          f"{'met' if f1 >= TARGET_LINK_F1 else 'NOT met'}")


if __name__ == "__main__":
    main()
