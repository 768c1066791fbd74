"""Benchmark: what one push of the incremental engine costs, and where the time goes.

Two parts, same run:

- **engine**: :meth:`~parkloop.facts.incremental.DeviceStream.push` on its own. A device's
  stream is fed its fixes up to some point in one untimed push (its *tail* then: the fixes kept
  since the restart point), then ``--pushes`` timed pushes of ``k`` fixes each
  (``--chunks``, default 1, 10, 100). Devices: synthetic 1 Hz phones (an hour on the road;
  12 hours of errands: 15 minutes of driving, a walk, 20 minutes still, the walk back; a 15-minute
  drive, then N hours parked with 5 m of GPS noise, so the open stop keeps the whole night in
  the tail) and simulated people (``parkloop simulate``,
  two days; the tail as it is at noon of the second day). Reported: ms per push, us per new
  fix, the tail (the fixes a push reruns the steps on), and the time split among the steps of
  :func:`~parkloop.facts.pipeline.device_facts` and the engine's own work around it.
- **live**: :meth:`parkloop.serve.live.Live.catch_up` over a simulated store, one raw batch
  per cycle (a device's upload: what a cycle pushes for it), with the spec's rule baseline as
  champion; the split among reading the batch, the push, judging the leg ends (``_judge``),
  and rebuilding the answer (``_answer``: ``_inputs``, ``car_answer``, the JSON).

The split wraps each step's function with a timer (exclusive time: a step's own time, less the
steps it calls) in a second pass of the same pushes; the ms per push come from the first pass,
without the timers. ``--profile FILE`` writes a pyinstrument profile of the engine pushes of
the largest chunk (pyinstrument must be installed). Wall times are medians (and the 90th
percentile) per push; CPU time (this process's, all threads) is the steadier figure on a
shared machine, and the split is in CPU time.

    python bench/push.py                     # about a minute on 2 cores
    python bench/push.py --chunks 10 --pushes 20 --json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parkloop.facts import features as feats
from parkloop.facts import incremental, legs, pipeline
from parkloop.facts.build import read_device
from parkloop.facts.features import Signals
from parkloop.facts.incremental import DeviceStream
from parkloop.facts.pipeline import Fixes
from parkloop.facts.rules import RulesVersion, load_rules
from parkloop.interpret.baseline import ThresholdRule
from parkloop.interpret.model import ParkedModel
from parkloop.serve import live as live_mod
from parkloop.serve.live import Live, ServedModel
from parkloop.simulate import simulate
from parkloop.store import Store

T0_MS = 1_741_000_000_000
"""synthetic devices start here (2025-03-03, UTC)"""

ENGINE_STEPS: list[tuple[Any, str, str]] = [
    (incremental.DeviceStream, "push", "push: late check, append"),
    (incremental.DeviceStream, "_run", "push: final/provisional split"),
    (incremental, "_merge_signals", "push: merge signals"),
    (incremental.DeviceStream, "_signals", "push: merge signals"),  # before 04c1eb3
    (incremental.DeviceStream, "_advance", "push: advance restart point"),
    (incremental.DeviceStream, "_trim", "push: trim tail"),
    (incremental.DeviceStream, "_settle", "push: soft restart point"),  # after 95cddc9
    (getattr(incremental, "_Soft", None), "open_since", "push: soft restart point"),
    (incremental, "device_facts", "device_facts: glue"),
    (pipeline, "clean_fixes", "order + clean"),
    (pipeline, "_stops", "stops (staypoints)"),
    (pipeline, "_open_since", "open stop window"),
    (pipeline, "_positions", "stop positions"),
    (legs, "segments", "segments + speeds"),
    (legs, "trips", "trips"),
    (legs, "vehicle_legs", "vehicle legs"),
    (legs, "other_legs", "other legs"),
    (legs, "span_distance", "span distances"),
    (pipeline, "assign", "places"),
    (pipeline, "motion_features", "motion features"),
    (pipeline, "leg_end_features", "leg-end features"),
    (feats, "drive_features", "drive features"),
    (feats, "said_features", "said features"),
    (pipeline, "_table", "arrow tables"),
    (pipeline, "_spans_table", "arrow tables"),
    (pipeline, "_legs_table", "arrow tables"),
]
LIVE_STEPS: list[tuple[Any, str, str]] = [
    (live_mod.Live, "catch_up", "live: catch_up glue"),
    (live_mod, "read_batches", "live: read batches"),
    (live_mod.Live, "_judge", "live: judge (model)"),
    (live_mod.Live, "_answer", "live: answer glue"),
    (live_mod.Live, "_inputs", "live: answer inputs"),
    (live_mod, "car_answer", "live: car_answer"),
    (live_mod, "answer_json", "live: answer JSON"),
]


class Steps:
    """Exclusive wall time per step, by wrapping the steps' functions where they are looked
    up (module attributes, class attributes); :meth:`installed` puts them back."""

    def __init__(self, steps: list[tuple[Any, str, str]]) -> None:
        self.steps = steps
        self.seconds: dict[str, float] = defaultdict(float)
        self.active = False
        """time only while this is set"""
        self._stack: list[float] = []

    def _wrap(self, fn: Callable[..., Any], label: str) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not self.active:
                return fn(*args, **kwargs)
            self._stack.append(0.0)
            start = time.process_time()
            try:
                return fn(*args, **kwargs)
            finally:
                took = time.process_time() - start
                inner = self._stack.pop()
                self.seconds[label] += took - inner
                if self._stack:
                    self._stack[-1] += took
        return timed

    @contextmanager
    def installed(self) -> Iterator[Steps]:
        """Steps a version of the code does not have are left out (so that the bench runs
        on older commits too, for a before/after)."""
        here = [(o, n, label) for o, n, label in self.steps
                if o is not None and n in o.__dict__]
        saved = [(owner, name, owner.__dict__[name]) for owner, name, _ in here]
        try:
            for owner, name, label in here:
                setattr(owner, name, self._wrap(getattr(owner, name), label))
            yield self
        finally:
            for owner, name, fn in saved:
                setattr(owner, name, fn)


@dataclass
class Row:
    part: str
    device: str
    k: int
    pushes: int
    tail_fixes: int
    ms_per_push: float
    ms_p90: float
    cpu_ms_per_push: float
    us_per_fix: float
    split_ms: dict[str, float]


# --- devices ------------------------------------------------------------------------------

def synthetic(drive_s: int, parked_s: int, seed: int) -> Fixes:
    """A 1 Hz phone: ``drive_s`` seconds east at 12 m/s, then ``parked_s`` seconds still,
    with 5 m of GPS noise throughout."""
    rng = np.random.default_rng(seed)
    n = drive_s + parked_s
    t = T0_MS + np.arange(n, dtype=np.int64) * 1000
    east_m = np.minimum(np.arange(n), drive_s) * 12.0 + rng.normal(0, 5, n)
    north_m = rng.normal(0, 5, n)
    lat = 48.0 + north_m / 111_320.0
    lon = 11.0 + east_m / (111_320.0 * np.cos(np.radians(48.0)))
    return Fixes(t, lat, lon, np.full(n, 8.0), np.full(n, np.nan), np.arange(n))


def errands(hours: float, seed: int) -> Fixes:
    """A 1 Hz phone out on errands: 15 minutes of driving (12 m/s, a new heading each
    time), a 3-minute walk away from the car (1.3 m/s), 20 minutes still, the walk back;
    again and again, with 5 m of GPS noise."""
    rng = np.random.default_rng(seed)
    n = int(hours * 3600)
    i = np.arange(n)
    cycle = 900 + 180 + 1200 + 180
    phase, k = i % cycle, i // cycle
    drive = rng.uniform(0, 2 * np.pi, k[-1] + 1)[k]
    walk = rng.uniform(0, 2 * np.pi, k[-1] + 1)[k]
    speed = np.select([phase < 900, phase < 1080, phase < 2280], [12.0, 1.3, 0.0], -1.3)
    heading = np.where(phase < 900, drive, walk)
    east_m = np.cumsum(speed * np.cos(heading)) + rng.normal(0, 5, n)
    north_m = np.cumsum(speed * np.sin(heading)) + rng.normal(0, 5, n)
    lat = 48.0 + north_m / 111_320.0
    lon = 11.0 + east_m / (111_320.0 * np.cos(np.radians(48.0)))
    return Fixes(T0_MS + i.astype(np.int64) * 1000, lat, lon, np.full(n, 8.0),
                 np.full(n, np.nan), i.astype(np.int64))


def simulated(days: int, devices: int, seed: int, work: Path
              ) -> tuple[Path, dict[str, tuple[Fixes, Signals]]]:
    path = work / "store"
    with Store.create(path) as store:
        simulate(store, devices=devices, days=days, seed=seed)
        names = [r[0] for r in store.con.execute(
            "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall()]
        return path, {d: read_device(store, d) for d in names}


# --- the engine part ----------------------------------------------------------------------

def feed(rules: RulesVersion, fixes: Fixes, signals: Signals, upto: int, k: int,
         pushes: int, steps: Steps | None) -> tuple[list[tuple[float, float]], int]:
    """Push fixes ``[0, upto)`` at once, then ``pushes`` chunks of ``k``; the seconds
    (wall, CPU) of each timed push and the tail before them."""
    stream = DeviceStream("bench", rules)
    f = fixes
    stream.push(f.t_ms[:upto], f.lat[:upto], f.lon[:upto], f.accuracy_m[:upto],
                f.altitude_m[:upto], signals)
    soft = getattr(stream, "_soft", None)  # the soft restart point (after 95cddc9)
    tail = len(soft.fixes if soft is not None else stream._fixes)
    took = []
    if steps is not None:
        steps.active = True
    for i in range(pushes):
        sl = slice(upto + i * k, upto + (i + 1) * k)
        start, cpu = time.perf_counter(), time.process_time()
        stream.push(f.t_ms[sl], f.lat[sl], f.lon[sl], f.accuracy_m[sl], f.altitude_m[sl])
        took.append((time.perf_counter() - start, time.process_time() - cpu))
    if steps is not None:
        steps.active = False
    return took, tail


def engine_part(rules: RulesVersion, devices: dict[str, tuple[Fixes, Signals, int]],
                chunks: list[int], pushes: int) -> list[Row]:
    rows = []
    for name, (fixes, signals, upto) in devices.items():
        for k in chunks:
            n = min(pushes, (len(fixes) - upto) // k)
            if n < 1:
                continue
            took, tail = feed(rules, fixes, signals, upto, k, n, None)
            steps = Steps(ENGINE_STEPS)
            with steps.installed():
                feed(rules, fixes, signals, upto, k, n, steps)
            split = {s: 1000 * v / n for s, v in steps.seconds.items()}
            ms = [1000 * x for x, _ in took]
            cpu = statistics.median(1000 * c for _, c in took)
            rows.append(Row("engine", name, k, n, tail, statistics.median(ms),
                            float(np.percentile(ms, 90)), cpu, 1000 * cpu / k, split))
            print(f"  {name:<24} k={k:<4} {cpu:8.2f} CPU ms/push  tail {tail}",
                  file=sys.stderr)
    return rows


# --- the live part ------------------------------------------------------------------------

def live_part(rules: RulesVersion, store_path: Path, cycles: int) -> list[Row]:
    """``catch_up`` one raw batch at a time; rows by fixes in the cycle's push."""
    champion = ServedModel("bench", ParkedModel(
        ThresholdRule(0, 10.0), ("leg_p85_speed_mps",), 0.5, "rule", "bench@0",
        rules.identity))
    rows = []
    with Store.open(store_path, read_only=True) as store:
        last = int(store.scalar("SELECT max(batch_no) FROM raw_batch"))
        for timed in (False, True):
            live = Live(rules, champion)
            steps = Steps(LIVE_STEPS + ENGINE_STEPS)
            steps.active = True
            by_size: dict[str, list[tuple[float, float]]] = defaultdict(list)
            split: dict[str, Counter[str]] = defaultdict(Counter)
            seen: Counter[str] = Counter()
            for b in range(1, min(last, cycles) + 1):
                before = dict(steps.seconds)
                cpu = time.process_time()
                if timed:
                    with steps.installed():
                        report = live.catch_up(store.con, upto=b, now_ms=0)
                else:
                    report = live.catch_up(store.con, upto=b, now_ms=0)
                if report.fixes == 0:
                    continue
                size = "1-10" if report.fixes <= 10 else "11-100" if report.fixes <= 100 \
                    else ">100"
                seen[size] += report.fixes
                if timed:
                    for s, v in steps.seconds.items():
                        split[size][s] += v - before.get(s, 0.0)
                else:
                    by_size[size].append((report.seconds, time.process_time() - cpu))
            if not timed:
                times, fixes = by_size, dict(seen)
        for size, took in sorted(times.items()):
            ms = [1000 * x for x, _ in took]
            cpu = [1000 * c for _, c in took]
            rows.append(Row("live", "simulated, batch by batch", 0, len(ms), 0,
                            statistics.median(ms), float(np.percentile(ms, 90)),
                            statistics.median(cpu), 1000 * sum(cpu) / fixes[size],
                            {s: 1000 * v / len(ms) for s, v in split[size].items()}))
            rows[-1].device = f"simulated, {size} fixes a push"
    return rows


# --- output -------------------------------------------------------------------------------

def print_tables(rows: list[Row]) -> None:
    print("| part | device | k | pushes | tail fixes | ms/push | p90 ms | CPU ms/push | "
          "CPU us/fix |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r.part} | {r.device} | {r.k or ''} | {r.pushes} | {r.tail_fixes or ''} | "
              f"{r.ms_per_push:.2f} | {r.ms_p90:.2f} | {r.cpu_ms_per_push:.2f} | "
              f"{r.us_per_fix:.0f} |")
    labels: list[str] = []
    for r in rows:
        labels += [s for s in r.split_ms if s not in labels]
    labels.sort(key=lambda s: -max(r.split_ms.get(s, 0.0) for r in rows))
    print()
    print("Time split, CPU ms per push (exclusive time of each step):")
    print()
    heads = [f"{r.device} k={r.k}" if r.k else r.device for r in rows]
    print("| step | " + " | ".join(heads) + " |")
    print("|---|" + "---|" * len(rows))
    for s in labels:
        print(f"| {s} | " + " | ".join(f"{r.split_ms.get(s, 0.0):.2f}" for r in rows) + " |")
    print("| (sum) | " + " | ".join(f"{sum(r.split_ms.values()):.2f}" for r in rows) + " |")


def profile(rules: RulesVersion, devices: dict[str, tuple[Fixes, Signals, int]], k: int,
            pushes: int, out: Path) -> None:
    from pyinstrument import Profiler

    prof = Profiler(interval=0.0005)
    for fixes, signals, upto in devices.values():
        n = min(pushes, (len(fixes) - upto) // k)
        stream = DeviceStream("bench", rules)
        f = fixes
        stream.push(f.t_ms[:upto], f.lat[:upto], f.lon[:upto], f.accuracy_m[:upto],
                    f.altitude_m[:upto], signals)
        prof.start()
        for i in range(n):
            sl = slice(upto + i * k, upto + (i + 1) * k)
            stream.push(f.t_ms[sl], f.lat[sl], f.lon[sl], f.accuracy_m[sl], f.altitude_m[sl])
        prof.stop()
    out.write_text(prof.output_text(show_all=False))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--chunks", type=int, nargs="+", default=[1, 10, 100],
                    help="fixes per push (default: 1 10 100)")
    ap.add_argument("--pushes", type=int, default=40, help="timed pushes per case")
    ap.add_argument("--parked-hours", type=float, nargs="+", default=[0.5, 3.0, 8.0],
                    help="synthetic devices parked this long before the timed pushes")
    ap.add_argument("--sim-devices", type=int, default=3)
    ap.add_argument("--live-cycles", type=int, default=400,
                    help="raw batches taken in by the live part (one per cycle)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print the rows as JSON")
    ap.add_argument("--profile", type=Path, help="write a pyinstrument profile here")
    args = ap.parse_args(argv)
    if min(args.chunks) < 1 or args.pushes < 1:
        ap.error("--chunks and --pushes must be at least 1")
    rules = load_rules("v1")
    margin = max(args.chunks) * args.pushes
    devices: dict[str, tuple[Fixes, Signals, int]] = {}
    drive = synthetic(3600 + margin, 0, args.seed)
    devices["drive 1 h, 1 Hz"] = (drive, Signals.none(), 3600)
    trip = errands(12.0 + margin / 3600, args.seed)
    devices["errands 12 h, 1 Hz"] = (trip, Signals.none(), 12 * 3600)
    for h in args.parked_hours:
        park = synthetic(900, int(h * 3600) + margin, args.seed)
        devices[f"parked {h:g} h, 1 Hz"] = (park, Signals.none(), 900 + int(h * 3600))
    with tempfile.TemporaryDirectory() as tmp:
        print("simulating ...", file=sys.stderr)
        store_path, sim = simulated(2, args.sim_devices, args.seed, Path(tmp))
        for name, (fixes, signals) in sim.items():
            noon = int(np.searchsorted(fixes.t_ms, fixes.t_ms.min() + 36 * 3600_000))
            devices[f"{name} (sim)"] = (fixes, signals, noon)
        # the numba cache fills (or is read) outside the timings
        feed(rules, drive, Signals.none(), 3600, 10, 2, None)
        print("engine part ...", file=sys.stderr)
        rows = engine_part(rules, devices, args.chunks, args.pushes)
        print("live part ...", file=sys.stderr)
        rows += live_part(rules, store_path, args.live_cycles)
        if args.profile:
            profile(rules, devices, max(args.chunks), args.pushes, args.profile)
    if args.json:
        print(json.dumps([asdict(r) for r in rows], indent=1))
    else:
        print_tables(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
