"""The loop's audit log: one JSON record per pass, appended to ``<store>/loop/audit.jsonl``.

A record says what was measured, which thresholds fired, what was trained, the gate's
numbers and the decision (see :func:`parkloop.loop.run.run_pass`). The log lives beside the
DuckDB file, not in it, so that ``parkloop loop history`` reads it while a server holds the
store. Appends take an exclusive ``fcntl`` lock and are fsync'd; a torn last line (a crash
mid-write) is skipped on reading.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from parkloop.errors import ParkloopError

LOOP_DIR = "loop"
AUDIT_FILE = "audit.jsonl"


def audit_path(store_path: Path) -> Path:
    return Path(store_path) / LOOP_DIR / AUDIT_FILE


def append(store_path: Path, record: dict[str, Any]) -> None:
    """Append ``record`` to the store's loop audit log, durably."""
    path = audit_path(store_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record, sort_keys=False, allow_nan=False) + "\n"
    with open(path, "a", encoding="utf-8") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        f.write(line)
        f.flush()
        os.fsync(f.fileno())


def history(store_path: Path) -> list[dict[str, Any]]:
    """Every pass's record, oldest first (empty before the first pass)."""
    path = audit_path(store_path)
    try:
        with open(path, encoding="utf-8") as f:
            fcntl.flock(f, fcntl.LOCK_SH)
            lines = f.read().splitlines()
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise ParkloopError(f"cannot read the loop's audit log {path}: {exc}") from exc
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a torn line from a crash mid-append
    return records
