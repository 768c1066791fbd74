"""The raw log a server's loop passes over: a copy of the store's raw tables in
``<store>/loop/mirror/``, appended to before each pass.

DuckDB lets one process write a database file, and a running server is that process for its
store; a pass builds facts and trains for tens of seconds, which would take the server's
interpreter lock from its requests. So the server copies the raw batches committed since the
last pass into the mirror (DuckDB to DuckDB, through ``ATTACH``: no rows cross Python), and a
worker process (:mod:`parkloop.loop.worker`) runs the pass on the mirror. Raw rows keep their
batch numbers, so watermarks mean the same in both; the mirror's facts are its own. Registry,
specs, rules and the audit log stay the store's (the worker passes the store as ``home``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from parkloop.loop.audit import LOOP_DIR
from parkloop.raw.schema import KINDS
from parkloop.store import DB_FILE, Store

if TYPE_CHECKING:
    import duckdb

MIRROR_DIR = "mirror"
_ALIAS = "parkloop_mirror"


def mirror_path(store_path: Path) -> Path:
    return Path(store_path) / LOOP_DIR / MIRROR_DIR


def sync_mirror(con: duckdb.DuckDBPyConnection, store_path: Path) -> tuple[Path, int]:
    """Append the raw batches of the store behind ``con`` (a cursor of the server's
    connection) that the mirror lacks, in one transaction; returns the mirror's directory and
    how many batches were copied. Nothing may hold the mirror open meanwhile."""
    path = mirror_path(store_path)
    Store.create(path).close()  # tables and schema version, on the first sync
    rules = Path(store_path) / "rules"
    if rules.is_dir() and not (path / "rules").exists():
        (path / "rules").symlink_to(rules.resolve(), target_is_directory=True)
    main = _one(con, "SELECT current_database()")
    con.execute(f"ATTACH '{path / DB_FILE}' AS {_ALIAS}")
    try:
        con.execute("BEGIN")
        span = [_one(con, f"SELECT coalesce(max(batch_no), 0) FROM {_ALIAS}.raw_batch"),
                _one(con, f'SELECT coalesce(max(batch_no), 0) FROM "{main}".raw_batch')]
        for table in [k.table for k in KINDS] + ["quarantine", "raw_batch"]:
            con.execute(f'INSERT INTO {_ALIAS}.{table} SELECT * FROM "{main}".{table} '
                        "WHERE batch_no > ? AND batch_no <= ?", span)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    finally:
        con.execute(f"DETACH {_ALIAS}")
    return path, int(span[1] - span[0])


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    return None if row is None else row[0]
