"""The embedded store: one directory holding the DuckDB database (and, later, registry and config).

Only this module opens the database; layers get a connection from :meth:`Store.connect`.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d:
...     with Store.create(pathlib.Path(d) / "s") as store:
...         store.schema_version
1
"""

from __future__ import annotations

import time
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import duckdb

from parkloop.errors import StoreError, StoreLocked, StoreNotFound, StoreVersionError
from parkloop.raw import schema

DB_FILE = "parkloop.duckdb"


class Store:
    """An open store directory. Use :meth:`open` for an existing one, :meth:`create` to make it."""

    def __init__(self, path: Path, con: duckdb.DuckDBPyConnection, *, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self._con = con

    @classmethod
    def create(cls, path: Path | str) -> Self:
        """Open the store at ``path`` for writing, creating it (and its tables) if needed."""
        path = Path(path)
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot make a store at {path}: {exc.strerror or exc}") from None
        store = cls(path, _connect(path / DB_FILE, read_only=False), read_only=False)
        store._migrate()
        return store

    @classmethod
    def open(cls, path: Path | str, *, read_only: bool = False) -> Self:
        """Open an existing store; raise :class:`StoreNotFound` where there is none."""
        path = Path(path)
        if not (path / DB_FILE).is_file():
            raise StoreNotFound(
                f"no parkloop store at {path} (create one with `parkloop simulate` or "
                "`parkloop import`, or point --store / PARKLOOP_STORE at an existing one)")
        store = cls(path, _connect(path / DB_FILE, read_only=read_only), read_only=read_only)
        if not read_only:
            store._migrate()
        store._check_version()
        return store

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The store's DuckDB connection (one per process; use ``.cursor()`` per thread)."""
        return self._con

    def scalar(self, sql: str, params: list[object] | None = None) -> Any:
        """The first value of the first row of a query, or None (the result is consumed)."""
        rows = self._con.execute(sql, params or []).fetchall()
        return rows[0][0] if rows else None

    @property
    def schema_version(self) -> int:
        value = self.scalar("SELECT value FROM meta WHERE key = 'schema_version'")
        return 0 if value is None else int(value)

    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _migrate(self) -> None:
        con = self._con
        con.execute("BEGIN")
        for stmt in schema.ddl():
            con.execute(stmt)
        con.execute(
            "INSERT INTO meta VALUES ('schema_version', ?), ('created_ms', ?) "
            "ON CONFLICT DO NOTHING", [str(schema.SCHEMA_VERSION), str(int(time.time() * 1000))])
        con.execute("COMMIT")
        self._check_version()

    def _check_version(self) -> None:
        found = self.schema_version
        if found != schema.SCHEMA_VERSION:
            raise StoreVersionError(
                f"store {self.path} has raw schema version {found}; this parkloop reads version "
                f"{schema.SCHEMA_VERSION}")


def _connect(db: Path, *, read_only: bool) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(str(db), read_only=read_only)
        con.execute("SET enable_progress_bar = false")  # parkloop draws its own bars
        return con
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StoreLocked(
                f"store {db.parent} is in use by another parkloop process; stop it or wait "
                "(DuckDB allows one writing process)") from exc
        raise StoreError(f"cannot open the store's database {db}: "
                         f"{str(exc).splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open the store's database {db}: "
                         f"{str(exc).splitlines()[0]}") from None
