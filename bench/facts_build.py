"""Benchmark: the whole `parkloop facts build` command against trackintel's staypoint step,
same data, same run; and the incremental engine's throughput on one core.

- ``facts build``: the CLI command in a fresh process (start-up, reading raw events, every
  step for every device, writing the facts), best of ``--repeat`` after one warm-up run that
  fills the numba cache (the cold first run is reported apart), with its peak memory;
- ``trackintel``: ``generate_staypoints(method="sliding")`` with its defaults on the same raw
  fixes (one step only; building its input frame is not timed). Needs ``pip install -e
  '.[bench]'``; skipped with a message otherwise;
- ``incremental``: every device's fixes pushed through :class:`DeviceStream` in time order,
  in chunks of ``--chunk`` fixes, on one thread: fixes per second.

Target: facts build >= 20x trackintel's staypoint throughput; incremental >= 50,000
fixes/s on one core.

    python bench/facts_build.py                      # geolife-dev.zip
    python bench/facts_build.py --data mini --repeat 3
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from parkloop.facts.incremental import DeviceStream
from parkloop.facts.inputs import read_device
from parkloop.facts.rules import load_rules
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[0].parent / "shared" / "data" / "geolife"


def cli_build(store: Path, rules: str) -> tuple[float, float]:
    """Wall time (s) and peak resident memory (MiB) of one `parkloop facts build`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "parkloop", "facts", "build", "--rules", rules,
                    "--store", str(store)], check=True, capture_output=True)
    wall = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, max(peak, before) / 1024


def trackintel_seconds(store: Path) -> float | None:
    spec = importlib.util.spec_from_file_location("tibench", HERE / "staypoints_vs_trackintel.py")
    if spec is None or spec.loader is None or importlib.util.find_spec("trackintel") is None:
        return None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["tibench"] = mod  # its dataclasses look themselves up there
    spec.loader.exec_module(mod)
    with Store.open(store, read_only=True) as s:
        devices = [d for (d,) in s.con.execute(
            "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall()]
        frame = mod.trackintel_frame(s, devices)
    start = time.perf_counter()
    mod.run_trackintel(frame)
    return time.perf_counter() - start


def incremental(store: Path, rules_name: str, chunk: int) -> tuple[int, float]:
    rules = load_rules(rules_name)
    total, seconds = 0, 0.0
    with Store.open(store, read_only=True) as s:
        devices = [d for (d,) in s.con.execute(
            "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall()]
        for device in devices:
            fixes, signals = read_device(s, device)
            order = np.argsort(fixes.t_ms, kind="stable")
            stream = DeviceStream(device, rules)
            start = time.perf_counter()
            for i in range(0, len(order), chunk):
                idx = order[i:i + chunk]
                stream.push(fixes.t_ms[idx], fixes.lat[idx], fixes.lon[idx],
                            fixes.accuracy_m[idx], fixes.altitude_m[idx],
                            signals if i == 0 else None)
            stream.flush()
            seconds += time.perf_counter() - start
            total += len(order)
    return total, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", choices=["mini", "dev"], default="dev")
    parser.add_argument("--rules", default="v1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--chunk", type=int, default=500, help="fixes per incremental push")
    parser.add_argument("--no-trackintel", action="store_true")
    parser.add_argument("--no-incremental", action="store_true")
    args = parser.parse_args()
    zip_path = DATA / f"geolife-{args.data}.zip"
    if not zip_path.is_file():
        raise SystemExit(f"{zip_path} not found")
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "store"
        with Store.create(store) as s:
            fixes = import_geolife(s, zip_path).events_stored["fix"]
        cold, _ = cli_build(store, args.rules)
        runs = [cli_build(store, args.rules) for _ in range(args.repeat)]
        wall = min(w for w, _ in runs)
        peak = max(m for _, m in runs)
        row: dict[str, Any] = {
            "data": zip_path.name, "fixes": fixes, "rules": args.rules,
            "facts_build_s": round(wall, 2), "facts_build_first_run_s": round(cold, 2),
            "facts_build_fixes_per_s": round(fixes / wall), "peak_rss_mib": round(peak)}
        if not args.no_trackintel:
            ti = trackintel_seconds(store)
            if ti is None:
                print("trackintel not installed (pip install -e '.[bench]'): skipped")
            else:
                row |= {"trackintel_staypoints_s": round(ti, 2),
                        "trackintel_fixes_per_s": round(fixes / ti),
                        "speedup_vs_trackintel": round(ti / wall, 1)}
        if not args.no_incremental:
            n, secs = incremental(store, args.rules, args.chunk)
            row |= {"incremental_chunk": args.chunk,
                    "incremental_fixes_per_s": round(n / secs)}
    print(json.dumps(row))
    print()
    for key, value in row.items():
        print(f"| {key} | {value:,} |" if isinstance(value, int | float) else
              f"| {key} | {value} |")


if __name__ == "__main__":
    main()
