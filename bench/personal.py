"""Benchmark: warm beats cold through the product's own path, on GeoLife.

Some people with car labels are held out: their labels.txt stays out of the import, so the
champion (`parkloop model train --publish`) never sees a word of theirs. Then, as the product
would meet them:

1. cold: `parkloop export parked` (nothing they said known);
2. they speak: the first 30 % of their labelled segments (in time order, as
   :func:`parkloop.interpret.views.warm_cutoff` splits them) as label events through
   `parkloop import events` (JSON Lines in the REST API's batch format), and their word on
   their early cold answers ("yes, I parked here" where an early car segment ended within
   5 min, else "no") through a real `parkloop serve`'s feedback API;
3. `parkloop loop run`, then warm: `parkloop export parked`;
4. the judge: their later 70 % of labels are imported only now, and both exports are scored
   end to end on the segments ending after each person's cutoff
   (:func:`parkloop.interpret.endtoend.end_to_end` with ``after``).

    python bench/personal.py [--zip geolife-dev.zip] [--held 167,126,062,125,082] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa

from parkloop.interpret.endtoend import end_to_end
from parkloop.interpret.speaking import Label, feedback, label_lines, read_parked
from parkloop.interpret.views import warm_cutoff
from parkloop.store import Store

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "geolife" / \
    "geolife-dev.zip"
HELD = "167,126,062,125,082"
"""people with car and other labels, not the two who hold most car ends"""
ADMIN = "bench-admin-token-0123456789abcdef"


def cli(*args: str | Path, store: Path) -> str:
    """``parkloop ARGS --store STORE``; its output (exits on failure)."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "parkloop", *map(str, args), "--store",
                           str(store)], capture_output=True, text=True,
                          env={**os.environ, "COLUMNS": "200"})
    print(f"  parkloop {' '.join(map(str, args))}: {time.perf_counter() - start:.0f} s",
          flush=True)
    if proc.returncode != 0:
        sys.exit(f"parkloop {args} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def read_labels(path: Path, device: str) -> list[Label]:
    """A GeoLife labels.txt as label events, said at the end of their span."""
    out = []
    for line in path.read_text().splitlines()[1:]:
        parts = line.strip().split("\t")
        if len(parts) != 3:
            continue
        start, end = (int(datetime.strptime(p, "%Y/%m/%d %H:%M:%S").replace(
            tzinfo=UTC).timestamp() * 1000) for p in parts[:2])
        out.append((device, end, start, end, parts[2].strip().lower()))
    return sorted(out, key=lambda r: (r[0], r[3]))


def send_feedback(store: Path, cold: pa.Table, early: list[Label],
                  cutoff: dict[str, int]) -> tuple[int, int]:
    """Each held-out person's word on their early cold answers, through a real server's
    feedback API with their own device token: (yes, no) sent."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    url = f"http://127.0.0.1:{port}"
    log = (store.parent / "serve.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "parkloop", "serve", "--store", str(store),
                             "--port", str(port), "--loop-interval", "0"], stdout=log,
                            stderr=subprocess.STDOUT,
                            env={**os.environ, "PARKLOOP_ADMIN_TOKEN": ADMIN})
    yes = no = 0
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                sys.exit(f"the server did not start: see {log.name}")
            time.sleep(0.2)
        for device in sorted(cutoff):
            r = httpx.post(url + "/v1/devices", json={"device_id": device}, timeout=30,
                           headers={"Authorization": f"Bearer {ADMIN}"})
            r.raise_for_status()
            token = {"Authorization": f"Bearer {r.json()['token']}"}
            for body in feedback(cold, early, device, cutoff[device]):
                r = httpx.post(f"{url}/v1/devices/{device}/feedback", headers=token, timeout=30,
                               json=body)
                r.raise_for_status()
                yes, no = yes + bool(body["parked"]), no + (not body["parked"])
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    return yes, no


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--zip", type=Path, default=DEV)
    parser.add_argument("--held", default=HELD, help="GeoLife people held out, comma separated")
    parser.add_argument("--keep", type=Path, help="work here and keep it (default: a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data, store = work / "geolife", work / "store"
        start = time.perf_counter()
        with zipfile.ZipFile(args.zip) as zf:
            zf.extractall(data)
        labels: list[Label] = []
        for person in args.held.split(","):
            found = list(data.rglob(f"Data/{person}/labels.txt"))
            if not found:
                sys.exit(f"person {person} has no labels.txt in {args.zip}")
            labels += read_labels(found[0], f"geolife-{person}")
            found[0].unlink()  # the champion never sees a word of theirs
        held = sorted({d for d, *_ in labels})
        cutoff = {d: warm_cutoff(np.array([e for x, _, _, e, _ in labels if x == d], np.int64))
                  for d in held}
        early = [r for r in labels if r[3] <= cutoff[r[0]]]
        later = [r for r in labels if r[3] > cutoff[r[0]]]
        print(f"held out: {', '.join(held)}: {len(labels)} labelled segments "
              f"({sum(r[4] == 'car' for r in labels)} car), {len(early)} said early, "
              f"{len(later)} judged later", flush=True)

        cli("import", "geolife", data, store=store)
        shutil.rmtree(data)
        print(cli("model", "train", "--publish", store=store)[-1500:], flush=True)
        cli("export", "parked", "--out", work / "cold.csv", store=store)
        cold = read_parked(work / "cold.csv")
        (work / "early.jsonl").write_text(label_lines(early, "early"))
        cli("import", "events", work / "early.jsonl", store=store)
        yes, no = send_feedback(store, cold, early, cutoff)
        print(f"  feedback through the API: {yes} yes, {no} no", flush=True)
        print(cli("loop", "run", store=store)[-2500:], flush=True)
        cli("export", "parked", "--out", work / "warm.csv", store=store)
        warm = read_parked(work / "warm.csv")
        (work / "later.jsonl").write_text(label_lines(later, "later"))
        cli("import", "events", work / "later.jsonl", store=store)
        with Store.open(store, read_only=True) as s:
            figures = {"cold": end_to_end(s, cold, after=cutoff),
                       "warm": end_to_end(s, warm, after=cutoff)}
        seconds = time.perf_counter() - start
    print(f"\nheld-out people's later segments, end to end ({seconds:.0f} s in all):\n")
    print("| | car ends | found | false alarms | precision | recall | F1 |")
    print("|---|---|---|---|---|---|---|")
    for how, f in figures.items():
        print(f"| {how} | {f['car_ends']} | {f['found']} | {f['false_alarms']} | "
              f"{f['precision']:.3f} | {f['recall']:.3f} | {f['f1']:.3f} |")
    print("\n| person | how | car ends | found | false alarms | F1 |")
    print("|---|---|---|---|---|---|")
    for how, f in figures.items():
        for row in f["per_person"]:
            print(f"| {row['device_id']} | {how} | {row.get('car_ends', '')} | "
                  f"{row.get('found', '')} | {row.get('false_alarms', '')} | "
                  f"{row.get('f1', float('nan')):.3f} |")
    better = figures["warm"]["f1"] > figures["cold"]["f1"]
    print(f"\nwarm {'beats' if better else 'does NOT beat'} cold: F1 "
          f"{figures['warm']['f1']:.3f} vs {figures['cold']['f1']:.3f}")


if __name__ == "__main__":
    main()
