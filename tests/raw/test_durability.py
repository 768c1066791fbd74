"""Once ``store_batch`` returns, the batch survives a crash: SIGKILL an ingesting process at
random moments, then check every acknowledged batch is there, exactly once, and whole."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from parkloop.store import Store

CHILD = Path(__file__).with_name("ingest_child.py")


def test_acknowledged_batches_survive_sigkill(tmp_path: Path) -> None:
    store_path = tmp_path / "store"
    rng = random.Random(20261121)
    acked: dict[str, int] = {}
    for round_no in range(6):
        proc = subprocess.Popen([sys.executable, str(CHILD), str(store_path),
                                 str(round_no * 100_000)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        assert proc.stdout is not None
        wanted = rng.randint(1, 25)
        lines = []
        while len(lines) < wanted:
            line = proc.stdout.readline()
            assert line, f"child died early: {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line)
        time.sleep(rng.uniform(0, 0.05))  # land the kill anywhere inside the next store
        os.kill(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        for line in lines + out.splitlines():
            _, batch_id, n = line.split()
            acked[batch_id] = int(n)

        with Store.open(store_path) as store:
            rows = store.con.execute(
                "SELECT batch_id, batch_no, n_events, n_stored, n_quarantined FROM raw_batch"
            ).fetchall()
            counts = dict(store.con.execute(
                "SELECT batch_no, count(*) FROM raw_fix GROUP BY batch_no").fetchall())
            quarantined = dict(store.con.execute(
                "SELECT batch_no, count(*) FROM quarantine GROUP BY batch_no").fetchall())
        stored = {bid: (no, n, s, q) for bid, no, n, s, q in rows}
        assert len(stored) == len(rows), "a batch id is stored twice"
        missing = sorted(set(acked) - set(stored))
        assert not missing, f"round {round_no}: acknowledged batches lost: {missing[:5]}"
        for bid, n in acked.items():
            assert stored[bid][1] == n
        for no, n, s, q in stored.values():  # every batch present is whole, acked or not
            assert (counts.get(no, 0), quarantined.get(no, 0)) == (s, q)
            assert s + q == n
    assert len(acked) >= 6
