"""Benchmark: `parkloop facts build` on the embedded engine and on Spark ``local[*]``, same
data, same run, at three sizes; wall time, peak memory, and whether the facts are identical.

- sizes: geolife-mini.zip and geolife-dev.zip (each imported into a fresh store), and a
  simulated store (``parkloop simulate``, ``--sim-devices`` x ``--sim-days``) about three times
  geolife-dev in fixes, cached under ``--work`` so reruns reuse it;
- each build is the CLI command in a fresh process (start-up, reading raw events, every step
  for every device, writing the facts), the two engines taking turns; best of ``--repeat``
  runs on the GeoLife sizes, ``--repeat-sim`` (default one) on the simulated one, after one
  untimed embedded build that fills the numba cache;
- peak memory, from ``/proc`` every 0.2 s (Linux only): for the embedded engine, the
  process's own high-water mark (``VmHWM``); for Spark, whose driver starts a JVM that starts
  Python workers, the peak of the whole process tree's summed resident memory. Summed RSS
  counts pages the forked workers share more than once, so it is an upper bound;
- load: the highest 1-min load average while a size ran (the run itself counts about 2 on
  2 cores), and the CPU everything else on the machine used meanwhile, in cores (busy time
  from ``/proc/stat`` less the measured process tree's): a run another job disturbed shows
  there, and is worth running again;
- identical facts: each fact table of the rules version (``ORDER BY ALL``, so by device) is
  hashed with :func:`~parkloop.facts.tables.table_digest` after every build, with the build's
  counts; "yes" when every build of a size gives the first embedded build's digests.

Target: the embedded engine is faster than Spark local on every size that fits in
memory here; Spark's fixed overhead is reported too (a session started and stopped alone).

    python bench/facts_engines.py --work /tmp/parkloop-engines
    python bench/facts_engines.py --sizes mini dev --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from parkloop.facts.rules import load_rules
from parkloop.facts.tables import SCHEMAS, table_digest
from parkloop.raw.geolife import import_geolife
from parkloop.simulate import simulate
from parkloop.store import Store
from procs import busy_cpu_s, tree

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife"
MIB = 1024 * 1024
SPARK = ["--engine", "spark", "--spark-master", "local[*]"]
SESSION_ONLY = ("from parkloop.facts.spark import spark_session\n"
                "with spark_session('local[*]') as s:\n    s.range(1).count()")


def high_water(pid: int) -> int:
    """A process's own peak resident memory so far (bytes; ``VmHWM``), 0 once it is gone.

    Not ``ru_maxrss``: Linux carries the forking parent's high-water mark into a child
    across ``exec``, so a child of this (large) process would report at least its size."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


@dataclass(frozen=True)
class Run:
    """One timed command."""

    wall_s: float
    tree_peak_mib: float  # sampled peak of the process tree's summed RSS
    own_peak_mib: float  # the command's own process's high-water mark
    largest_peak_mib: float  # the largest high-water mark of any one process of the tree
    load: float  # highest 1-min load average seen while it ran (the run itself included)
    other_cores: float  # CPU used by everything else on the machine, in cores, on average


def timed(cmd: list[str]) -> Run:
    """Run ``cmd`` to the end; its wall time and peak memory, and how busy the machine was
    with other work meanwhile."""
    peak, load, done = [0], [os.getloadavg()[0]], threading.Event()
    cpu: dict[int, float] = {}  # the last CPU time seen of each process of the tree
    hwm: dict[int, int] = {}  # the last high-water mark seen of each process of the tree
    with tempfile.TemporaryFile() as log:
        busy, own = busy_cpu_s(), time.process_time()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log)

        def sample() -> None:
            while not done.wait(0.2):
                seen = tree(proc.pid)
                peak[0] = max(peak[0], sum(rss for rss, _ in seen.values()))
                cpu.update({pid: used for pid, (_, used) in seen.items()})
                for pid in seen:
                    hwm[pid] = max(hwm.get(pid, 0), high_water(pid))
                load[0] = max(load[0], os.getloadavg()[0])

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        # the command's own CPU, the descendants it did not wait for (Spark's JVM), the sampler
        ours = (usage.ru_utime + usage.ru_stime + time.process_time() - own
                + sum(used for pid, used in cpu.items() if pid != proc.pid))
        other = max(0.0, busy_cpu_s() - busy - ours) / wall
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{tail}")
    # Spark's JVM outlives the driver by about half a second: let it go before the next run
    deadline = time.monotonic() + 30
    while any(alive(pid) for pid in cpu) and time.monotonic() < deadline:
        time.sleep(0.05)
    return Run(wall, peak[0] / MIB, hwm.get(proc.pid, 0) / MIB,
               max(hwm.values(), default=0) / MIB, load[0], other)


def build_cmd(store: Path, rules: str, engine: list[str]) -> list[str]:
    return [sys.executable, "-m", "parkloop", "facts", "build", "--rules", rules,
            "--store", str(store), *engine]


def facts_digests(store: Path, rules: str) -> dict[str, Any]:
    """Each fact table of ``rules`` as a digest, and the build's counts."""
    identity = load_rules(rules, store).identity
    with Store.open(store, read_only=True) as s:
        out: dict[str, Any] = {name: table_digest(s.con.sql(
            f"SELECT * FROM {name} WHERE rules_version = $rv ORDER BY ALL",
            params={"rv": identity}).to_arrow_table()) for name in SCHEMAS}
        out["counts"] = s.con.execute(
            "SELECT n_devices, n_fixes, n_fixes_used, n_late FROM facts_build "
            "WHERE rules_version = ?", [identity]).fetchall()
    return out


def store_size(store: Path) -> tuple[int, int]:
    """Fixes and devices in a store's raw layer."""
    with Store.open(store, read_only=True) as s:
        fixes, devices = s.con.execute(
            "SELECT count(*), count(DISTINCT device_id) FROM raw_fix").fetchall()[0]
    return int(fixes), int(devices)


def simulated_store(work: Path, devices: int, days: int, seed: int) -> Path:
    """The simulated store under ``work``, made once (a half-made one is made again)."""
    path = work / f"sim-{devices}x{days}d-seed{seed}"
    if (path / "complete").is_file():
        return path
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    start = time.perf_counter()
    with Store.create(partial) as s:
        simulate(s, devices=devices, days=days, seed=seed)
    seconds = time.perf_counter() - start
    (partial / "complete").write_text(f"simulated in {seconds:.0f} s\n")
    shutil.rmtree(path, ignore_errors=True)
    partial.rename(path)
    print(f"simulated {devices} devices x {days} days in {seconds:.0f} s", file=sys.stderr)
    return path


def compare(label: str, store: Path, rules: str, repeat: int) -> dict[str, Any]:
    """Both engines on one store, taking turns ``repeat`` times; best wall time of each."""
    fixes, devices = store_size(store)
    timed(build_cmd(store, rules, []))  # warm-up: numba cache, page cache
    reference = facts_digests(store, rules)
    runs: dict[str, list[Run]] = {"embedded": [], "spark": []}
    identical = True
    for i in range(repeat):
        for engine, flags in (("embedded", []), ("spark", SPARK)):
            run = timed(build_cmd(store, rules, flags))
            runs[engine].append(run)
            identical &= facts_digests(store, rules) == reference
            print(f"{label} {engine} run {i + 1}: {json.dumps(asdict(run))}", file=sys.stderr)
    emb = min(runs["embedded"], key=lambda r: r.wall_s)
    spk = min(runs["spark"], key=lambda r: r.wall_s)
    loads = [r.load for rs in runs.values() for r in rs]
    return {
        "data": label, "fixes": fixes, "devices": devices, "runs": repeat,
        "embedded_s": round(emb.wall_s, 2),
        "embedded_peak_mib": round(max(r.own_peak_mib for r in runs["embedded"])),
        "embedded_tree_peak_mib": round(max(r.tree_peak_mib for r in runs["embedded"])),
        "spark_s": round(spk.wall_s, 2),
        "spark_peak_mib": round(max(r.tree_peak_mib for r in runs["spark"])),
        "spark_largest_process_mib": round(max(r.largest_peak_mib for r in runs["spark"])),
        "spark_over_embedded": round(spk.wall_s / emb.wall_s, 1),
        "identical_facts": "yes" if identical else "no",
        "load_1min": f"{min(loads):.1f}-{max(loads):.1f}",
        "other_cores": round(max(r.other_cores for rs in runs.values() for r in rs), 2),
        "all_runs_s": {k: [round(r.wall_s, 2) for r in v] for k, v in runs.items()}}


def markdown(rows: list[dict[str, Any]]) -> str:
    head = ("| data | fixes | devices | embedded s | embedded peak MiB | Spark local[*] s "
            "| Spark peak MiB | Spark / embedded | identical facts | load (1 min) "
            "| other jobs' CPU (cores) |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        runs = f" (best of {r['runs']})" if r["runs"] > 1 else " (1 run)"
        lines.append(
            f"| {r['data']}{runs} | {r['fixes']:,} | {r['devices']} | {r['embedded_s']:.2f} "
            f"| {r['embedded_peak_mib']:,} | {r['spark_s']:.2f} | {r['spark_peak_mib']:,} "
            f"| {r['spark_over_embedded']}x | {r['identical_facts']} | {r['load_1min']} "
            f"| {r['other_cores']:.2f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", nargs="+", choices=["mini", "dev", "sim"],
                        default=["mini", "dev", "sim"])
    parser.add_argument("--rules", default="v1")
    parser.add_argument("--repeat", type=int, default=3, help="runs per engine, GeoLife sizes")
    parser.add_argument("--repeat-sim", type=int, default=1,
                        help="runs per engine, simulated size")
    parser.add_argument("--sim-devices", type=int, default=120)
    parser.add_argument("--sim-days", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, help="where the simulated store is kept "
                        "(default: a temporary directory, made again each run)")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="parkloop-engines-") as tmp:
        session = [timed([sys.executable, "-c", SESSION_ONLY]) for _ in range(3)]
        python = [timed([sys.executable, "-m", "parkloop", "--help"]) for _ in range(3)]
        for size in args.sizes:
            if size == "sim":
                work = args.work or Path(tmp)
                work.mkdir(parents=True, exist_ok=True)
                store = simulated_store(work, args.sim_devices, args.sim_days, args.seed)
                label = f"simulated {args.sim_devices} x {args.sim_days} d"
                rows.append(compare(label, store, args.rules, args.repeat_sim))
            else:
                zip_path = DATA / f"geolife-{size}.zip"
                if not zip_path.is_file():
                    raise SystemExit(f"{zip_path} not found")
                store = Path(tmp) / size
                with Store.create(store) as s:
                    import_geolife(s, zip_path)
                rows.append(compare(zip_path.name, store, args.rules, args.repeat))
            print(json.dumps(rows[-1]))
    print()
    print(markdown(rows))
    print()
    print(f"Peak memory: embedded = the process's VmHWM; Spark = summed RSS of driver, JVM "
          f"and Python workers (sampled every 0.2 s). A Spark local[*] session started and "
          f"stopped alone in a fresh process: {min(r.wall_s for r in session):.1f} s, "
          f"{max(r.tree_peak_mib for r in session):,.0f} MiB (`parkloop --help`: "
          f"{min(r.wall_s for r in python):.1f} s). {os.cpu_count()} cores.")

if __name__ == "__main__":
    main()
