"""Benchmark: our sliding staypoint kernel against trackintel 1.4.2, same run, same fixes.

For each data set (GeoLife people 000 + 001 from geolife-mini.zip; all of geolife-dev.zip when
present), imported into a temporary store:

- ``read``: reading the fixes as trackintel would see them (exact duplicates dropped, ordered
  by time) from the store into NumPy, per device;
- ``kernel``: :func:`sliding_staypoints` on the fixes in memory (trackintel's defaults);
- ``kernel+pos``: the same plus :func:`staypoint_positions` (trackintel's centroid), which is
  what trackintel's step computes too;
- ``trackintel``: ``generate_staypoints(method="sliding")`` with its defaults on a Positionfixes
  frame of the same raw rows (building the frame is not timed; its duplicate drop is).

The numba cache is warmed before timing; the cold compile (empty cache, fresh process) and the
load from a warm cache are measured apart. trackintel is not a dependency of parkloop:
``pip install -e '.[bench]'``.

    python bench/staypoints_vs_trackintel.py                 # mini 000+001 and dev
    python bench/staypoints_vs_trackintel.py --only mini --repeat 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from parkloop.facts.staypoints import (
    TRACKINTEL_DEFAULTS,
    sliding_staypoints,
    staypoint_positions,
)
from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife"
SETS = {"mini": ("geolife-mini.zip", ["geolife-000", "geolife-001"]),
        "dev": ("geolife-dev.zip", None)}

DEDUPED = """
    SELECT device_id, t_ms, lat, lon FROM raw_fix WHERE device_id IN ({devices})
    QUALIFY row_number() OVER (PARTITION BY device_id, t_ms, lat, lon, altitude_m
                               ORDER BY batch_no, seq) = 1
    ORDER BY device_id, t_ms, batch_no, seq"""


@dataclass
class Fixes:
    devices: list[str]
    bounds: np.ndarray  # device k is rows bounds[k]:bounds[k + 1]
    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray


def read_fixes(store: Store, devices: list[str]) -> Fixes:
    """Deduplicated, time-ordered fixes of ``devices``, one contiguous block per device."""
    ph = ", ".join("?" * len(devices))
    table = store.con.sql(DEDUPED.format(devices=ph), params=devices).to_arrow_table()
    dev = table.column("device_id").dictionary_encode().combine_chunks()
    codes = np.asarray(dev.indices)
    bounds = np.concatenate([[0], np.flatnonzero(np.diff(codes)) + 1, [len(codes)]])
    names = [str(dev.dictionary[int(codes[b])]) for b in bounds[:-1]]
    return Fixes(names, bounds, np.asarray(table.column("t_ms")),
                 np.asarray(table.column("lat")), np.asarray(table.column("lon")))


def ours(fx: Fixes, positions: bool) -> tuple[int, list[tuple[str, int, int]]]:
    n = 0
    keys: list[tuple[str, int, int]] = []
    for k, device in enumerate(fx.devices):
        sl = slice(fx.bounds[k], fx.bounds[k + 1])
        t, lat, lon = fx.t[sl], fx.lat[sl], fx.lon[sl]
        sp = sliding_staypoints(t, lat, lon, **TRACKINTEL_DEFAULTS)
        if positions:
            staypoint_positions(lat, lon, sp.first, sp.last)
        n += len(sp)
        keys += [(device, a, b) for a, b in zip(sp.started_ms.tolist(), sp.finished_ms.tolist(),
                                                strict=True)]
    return n, keys


def best_of(repeat: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return min(times), out


def trackintel_frame(store: Store, devices: list[str]) -> Any:
    import geopandas as gpd
    import pandas as pd
    import trackintel as ti

    ph = ", ".join("?" * len(devices))
    df = store.con.execute(
        f"SELECT device_id, t_ms, lat, lon, altitude_m FROM raw_fix WHERE device_id IN ({ph}) "
        "ORDER BY device_id, batch_no, seq", devices).df()
    gdf = gpd.GeoDataFrame({
        "user_id": df["device_id"].str.removeprefix("geolife-").astype("int64"),
        "tracked_at": pd.to_datetime(df["t_ms"], unit="ms", utc=True),
        "elevation": df["altitude_m"]},
        geometry=gpd.points_from_xy(df["lon"], df["lat"]), crs="EPSG:4326")
    gdf.index.name = "id"
    return ti.Positionfixes(gdf)


def run_trackintel(pfs: Any) -> tuple[int, list[tuple[str, int, int]]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "N duplicates were dropped"
        _, sp = pfs.generate_staypoints(method="sliding")
    started = sp["started_at"].astype("datetime64[ms, UTC]").astype("int64").tolist()
    finished = sp["finished_at"].astype("datetime64[ms, UTC]").astype("int64").tolist()
    users = [f"geolife-{u:03d}" for u in sp["user_id"].tolist()]
    return len(sp), list(zip(users, started, finished, strict=True))


def compile_times() -> dict[str, float]:
    """First call in a fresh process: with an empty numba cache (cold), then with it warm."""
    code = ("import time; s = time.perf_counter(); import numpy as np; "
            "from parkloop.facts.staypoints import sliding_staypoints, staypoint_positions, "
            "TRACKINTEL_DEFAULTS as D; i = time.perf_counter(); "
            "sp = sliding_staypoints(np.arange(3) * 400_000, np.zeros(3), np.zeros(3), **D); "
            "staypoint_positions(np.zeros(3), np.zeros(3), sp.first, sp.last, 'median'); "
            "print(i - s, time.perf_counter() - i)")
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold", "cached"):
            proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True, env={**os.environ, "NUMBA_CACHE_DIR": cache})
            imp, first = map(float, proc.stdout.split())
            out[f"{label}_first_call_s"] = round(first, 3)
            out[f"{label}_import_s"] = round(imp, 3)
    return out


def warm_up() -> None:
    """Compile (or load from the cache) every specialisation the timed runs use: arrays read
    from Arrow are read-only, which numba types apart from writeable ones."""
    for writeable in (True, False):
        t, lat, lon = np.arange(3) * 400_000, np.zeros(3), np.zeros(3)
        for a in (t, lat, lon):
            a.setflags(write=writeable)
        sp = sliding_staypoints(t, lat, lon, **TRACKINTEL_DEFAULTS)
        staypoint_positions(lat, lon, sp.first, sp.last)


def measure(name: str, repeat: int, ti_repeat: int, has_ti: bool) -> dict[str, Any]:
    zip_name, devices = SETS[name]
    with tempfile.TemporaryDirectory() as tmp, Store.create(Path(tmp) / "s") as store:
        import_geolife(store, DATA / zip_name)
        if devices is None:
            devices = [d for (d,) in store.con.execute(
                "SELECT DISTINCT device_id FROM raw_fix ORDER BY 1").fetchall()]
        raw = store.scalar(f"SELECT count(*) FROM raw_fix WHERE device_id IN "
                           f"({', '.join('?' * len(devices))})", devices)
        read_s, fx = best_of(repeat, lambda: read_fixes(store, devices))
        n = len(fx.t)
        kernel_s, (n_sp, keys) = best_of(repeat, lambda: ours(fx, positions=False))
        pos_s, _ = best_of(repeat, lambda: ours(fx, positions=True))
        row: dict[str, Any] = {
            "data": f"{zip_name}" + (" 000+001" if name == "mini" else ""),
            "people": len(devices), "raw_fixes": raw, "fixes": n, "staypoints": n_sp,
            "read_s": round(read_s, 4), "read_fixes_per_s": round(n / read_s),
            "kernel_s": round(kernel_s, 4), "kernel_fixes_per_s": round(n / kernel_s),
            "kernel_pos_s": round(pos_s, 4), "kernel_pos_fixes_per_s": round(n / pos_s)}
        if has_ti:
            pfs = trackintel_frame(store, devices)
            ti_s, (ti_n, ti_keys) = best_of(ti_repeat, lambda: run_trackintel(pfs))
            row.update({
                "trackintel_s": round(ti_s, 3), "trackintel_fixes_per_s": round(raw / ti_s),
                "trackintel_staypoints": ti_n,
                "same_start_finish": len(set(ti_keys) & set(keys)),
                "speedup_kernel_pos": round(ti_s / pos_s, 1),
                "speedup_read_kernel_pos": round(ti_s / (read_s + pos_s), 1)})
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=list(SETS))
    parser.add_argument("--repeat", type=int, default=5, help="best of N for parkloop")
    parser.add_argument("--ti-repeat", type=int, default=1, help="best of N for trackintel")
    args = parser.parse_args()
    try:
        import trackintel

        has_ti = True
        print(f"trackintel {trackintel.__version__}")
    except ImportError:
        has_ti = False
        print("trackintel is NOT installed: measuring parkloop only "
              "(pip install -e '.[bench]' to compare)")
    comp = compile_times()
    print(json.dumps({"numba": comp}))
    warm_up()
    rows = []
    for name in [args.only] if args.only else list(SETS):
        if not (DATA / SETS[name][0]).is_file():
            print(f"skipped {name}: {DATA / SETS[name][0]} not found")
            continue
        rows.append(measure(name, args.repeat, args.ti_repeat, has_ti))
        print(json.dumps(rows[-1]))
    print()
    print("| data | fixes | staypoints | read from store | kernel | kernel + positions | "
          "trackintel | speed-up (kernel + pos / + read) | same start+finish |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        ti_cells = (f"{r['trackintel_s']} s ({r['trackintel_fixes_per_s']:,}/s) | "
                    f"{r['speedup_kernel_pos']}x / {r['speedup_read_kernel_pos']}x | "
                    f"{r['same_start_finish']}/{r['trackintel_staypoints']}"
                    if "trackintel_s" in r else "not installed | - | -")
        print(f"| {r['data']} | {r['fixes']:,} | {r['staypoints']:,} | "
              f"{r['read_s']} s ({r['read_fixes_per_s']:,}/s) | "
              f"{r['kernel_s']} s ({r['kernel_fixes_per_s']:,}/s) | "
              f"{r['kernel_pos_s']} s ({r['kernel_pos_fixes_per_s']:,}/s) | {ti_cells} |")
    print(f"\nnumba: cold compile {comp['cold_first_call_s']} s, load from cache "
          f"{comp['cached_first_call_s']} s (first call in a fresh process)")


if __name__ == "__main__":
    main()
