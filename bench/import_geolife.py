"""Benchmark: `parkloop import geolife` on the shared GeoLife zips.

Measures, each in a fresh store: the first import, the re-import (must add nothing), and, as
a floor measured in the same run, the time just to decompress every file of the zip.
Target: the 5.26 M fixes of geolife-dev.zip in under 20 s on a 2-core machine.

    python bench/import_geolife.py            # both zips, 3 repeats
    python bench/import_geolife.py --only mini --repeat 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import zipfile
from pathlib import Path

from parkloop.raw.geolife import import_geolife
from parkloop.store import Store

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife"
TARGET_S = {"dev": 20.0}


def decompress_only(path: Path) -> float:
    start = time.perf_counter()
    with zipfile.ZipFile(path) as zf:
        for name in zf.namelist():
            zf.read(name)
    return time.perf_counter() - start


def run(name: str, repeat: int) -> dict[str, object]:
    path = DATA / f"geolife-{name}.zip"
    firsts, agains = [], []
    fixes = 0
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as tmp, Store.create(Path(tmp) / "s") as store:
            start = time.perf_counter()
            report = import_geolife(store, path)
            firsts.append(time.perf_counter() - start)
            fixes = report.events_stored["fix"]
            start = time.perf_counter()
            again = import_geolife(store, path)
            agains.append(time.perf_counter() - start)
            assert again.batches_stored == 0, "re-import stored something"
    floor = min(decompress_only(path) for _ in range(repeat))
    best = min(firsts)
    return {"data": path.name, "fixes": fixes, "import_s": round(best, 2),
            "import_median_s": round(statistics.median(firsts), 2),
            "fixes_per_s": round(fixes / best), "reimport_s": round(min(agains), 2),
            "decompress_only_s": round(floor, 2), "import_vs_decompress": round(best / floor, 1),
            "target_s": TARGET_S.get(name)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=["mini", "dev"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    names = [args.only] if args.only else ["mini", "dev"]
    rows = []
    for name in names:
        if not (DATA / f"geolife-{name}.zip").is_file():
            print(f"skipped {name}: {DATA}/geolife-{name}.zip not found")
            continue
        rows.append(run(name, args.repeat))
        print(json.dumps(rows[-1]))
    print()
    print("| data | fixes | import (best) | fixes/s | re-import | unzip only | import / unzip |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['data']} | {r['fixes']:,} | {r['import_s']} s | {r['fixes_per_s']:,} | "
              f"{r['reimport_s']} s | {r['decompress_only_s']} s | "
              f"{r['import_vs_decompress']}x |")


if __name__ == "__main__":
    main()
