"""A full disk: the store lives on a small tmpfs mounted here (root only; CI runs as root) and
ingestion fills it. The server answers 507 ``store_full``, acknowledges nothing it did not
store, keeps answering reads, and stores again once space is freed; ``parkloop import`` says
so in one line and exits 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from parkloop.store import Store
from tests.conftest import run_cli
from tests.serve.test_faults import ADMIN, DEVICES, KillableServer, batch


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MB tmpfs, unmounted after the test."""
    if os.geteuid() != 0:
        if os.environ.get("CI"):  # CI runs as root: a skip there would hide the test
            pytest.fail("the disk-full tests need root to mount a tmpfs, and CI is set")
        pytest.skip("the disk-full tests mount a tmpfs: run them as root")
    where = tmp_path / "disk"
    where.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(where)], check=True)
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=True)


def fill(disk: Path, leave_bytes: int) -> Path:
    """Take all but ``leave_bytes`` of the disk's free space with a file; its path."""
    filler = disk / "filler"
    free = shutil.disk_usage(disk).free
    with filler.open("wb") as f:
        f.write(b"\0" * max(free - leave_bytes, 0))
    return filler


def test_a_full_disk_is_507_reads_go_on_and_writes_resume(
        small_disk: Path, registry_template: Path, tmp_path: Path) -> None:
    store = small_disk / "store"
    shutil.copytree(registry_template, store)
    server = KillableServer(store, log_dir=tmp_path, workers=0)
    try:
        server.caught_up()
        url, device = server.url, DEVICES[0]
        with httpx.Client(base_url=url, headers=ADMIN, timeout=30) as api:
            path = f"/v1/devices/{device}/events"
            first = api.post(path, json={"batch_id": "b00000", "events": batch(0, 0)})
            assert first.status_code == 200, first.text
            filler = fill(small_disk, 64 * 1024)
            refused, k = None, 1
            while refused is None and k < 200:  # until the disk is full
                r = api.post(path, json={"batch_id": f"b{k:05d}", "events": batch(0, k)})
                if r.status_code == 200:
                    k += 1
                else:
                    refused = r
            assert refused is not None, "the disk never filled"
            assert refused.status_code == 507, refused.text
            assert refused.json()["error"] == "store_full"
            assert "full" in refused.json()["message"]
            acked = k  # batches b00000 .. b{k-1} were acknowledged, b{k} was not
            # still up for reads, and it took in every batch it stored
            server.caught_up(timeout=30)
            car = api.get(f"/v1/devices/{device}/car")
            assert car.status_code == 200, car.text
            filler.unlink()
            again = api.post(path, json={"batch_id": f"b{k:05d}", "events": batch(0, k)})
            assert again.status_code == 200, again.text
            assert again.json()["status"] == "stored"
    finally:
        server.stop()
    with Store.open(store, read_only=True) as s:
        rows = s.con.execute("SELECT batch_id, n_stored, (SELECT count(*) FROM raw_fix f "
                             "WHERE f.batch_no = b.batch_no) FROM raw_batch b "
                             "ORDER BY batch_no").fetchall()
    assert [r[0] for r in rows] == [f"b{i:05d}" for i in range(acked + 1)]
    assert all(n == fixes == 60 for _, n, fixes in rows), "a batch is torn"


def test_import_on_a_full_disk_is_one_line(small_disk: Path, geolife_mini: Path) -> None:
    store = small_disk / "store"
    Store.create(store).close()
    fill(small_disk, 256 * 1024)
    proc = run_cli("import", "geolife", geolife_mini, store=store, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1, proc.stderr
    assert lines[-1].startswith("error: "), proc.stderr
    assert "full" in lines[-1], proc.stderr
    assert [ln for ln in lines if ln.startswith("error")] == lines[-1:], proc.stderr
