"""Device and admin tokens, kept beside the store's DuckDB in ``<store>/auth.sqlite``.

Why not in DuckDB
    DuckDB lets one process write; ``parkloop serve`` is that process while it runs. Tokens live
    in a SQLite file (WAL mode, busy timeout) so that ``parkloop device token ID`` works whether
    or not a server is running — the way the model registry and its audit log live beside it.

What is stored
    Tokens are ``plk_`` + ``secrets.token_urlsafe(32)`` (256 random bits), so that logs and
    secret scanners recognise them. Only their SHA-256 hex digests are stored; the clear token
    is returned once, by :meth:`TokenBook.issue` or :meth:`TokenBook.register`, and never again.
    A device has at most one token: issuing a new one revokes the old.

How the server uses it
    It holds :meth:`TokenBook.snapshot` (digest -> device) in memory, looks a request's
    :func:`token_digest` up in it, and reloads it when the cheap :meth:`TokenBook.changed` says
    so; it checks :meth:`TokenBook.changed` every few seconds (its reload interval), so a token
    the CLI replaces or revokes stops working within that interval, and a new one starts to.
    A dict lookup by digest leaks no timing an attacker can use: the digest of a guess is not a
    prefix of anything the attacker controls.

The admin token
    ``$PARKLOOP_ADMIN_TOKEN`` (:data:`ADMIN_TOKEN_ENV`), if set, is the admin token: its digest
    is compared and nothing is written. Otherwise :meth:`TokenBook.ensure_admin` generates one
    on the first start, stores its digest and returns it once for the caller to print; later
    starts return None and keep the stored digest.

>>> import tempfile, pathlib
>>> with tempfile.TemporaryDirectory() as d, TokenBook(pathlib.Path(d)) as book:
...     token = book.issue("phone-1")
...     (token.startswith("plk_"), book.device_for(token), book.device_for("plk_guess"))
(True, 'phone-1', None)
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Self

from parkloop.errors import (
    DeviceAlreadyRegistered,
    RejectedInput,
    StoreError,
    StoreNotFound,
    StoreVersionError,
)
from parkloop.raw.events import check_id

AUTH_FILE = "auth.sqlite"
"""the token file inside the store directory"""
ADMIN_TOKEN_ENV = "PARKLOOP_ADMIN_TOKEN"
"""environment variable holding the admin token; when unset, one is generated and stored"""
TOKEN_PREFIX = "plk_"
"""every generated token starts with this"""
MIN_ADMIN_TOKEN_CHARS = 16
"""an admin token from the environment shorter than this is refused"""

_SCHEMA_VERSION = 1  # PRAGMA user_version of auth.sqlite
_BUSY_TIMEOUT_S = 10.0  # how long a write waits for another process's write to finish
_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS device_tokens (
        device_id TEXT PRIMARY KEY,
        sha256    TEXT NOT NULL UNIQUE,  -- hex digest of the token; never the token itself
        issued_ms INTEGER NOT NULL       -- UTC epoch milliseconds
    )""",
    """CREATE TABLE IF NOT EXISTS admin_token (
        id        INTEGER PRIMARY KEY CHECK (id = 1),
        sha256    TEXT NOT NULL,
        issued_ms INTEGER NOT NULL
    )""",
    f"PRAGMA user_version = {_SCHEMA_VERSION}",
)


@dataclass(frozen=True)
class DeviceToken:
    """A device that holds a token, and when that token was issued (UTC epoch ms)."""

    device_id: str
    issued_ms: int


def new_token() -> str:
    """A fresh random token: ``plk_`` and 43 URL-safe characters (256 bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_digest(token: str) -> bytes:
    """The SHA-256 digest of ``token``: what is stored and what :meth:`TokenBook.snapshot`
    is keyed by.

    >>> token_digest("plk_x").hex()[:12]
    '21d98bb07f1b'
    """
    return hashlib.sha256(token.encode("utf-8")).digest()


def admin_token_from(env: Mapping[str, str]) -> str | None:
    """The admin token ``env`` sets (:data:`ADMIN_TOKEN_ENV`), or None where it sets none;
    raise :class:`RejectedInput` where it is set but too short to be a secret."""
    token = env.get(ADMIN_TOKEN_ENV)
    if token is None:
        return None
    token = token.strip()
    if len(token) < MIN_ADMIN_TOKEN_CHARS:
        raise RejectedInput(f"{ADMIN_TOKEN_ENV} is set but has {len(token)} characters; use at "
                            f"least {MIN_ADMIN_TOKEN_CHARS} random ones, or unset it to have "
                            "one generated")
    return token


class TokenBook:
    """The tokens of a store (see the module docstring). Thread-safe: one SQLite connection,
    used under a lock; cheap calls, so the server may share one instance between threads."""

    def __init__(self, store_path: Path) -> None:
        store_path = Path(store_path)
        if not store_path.is_dir():
            raise StoreNotFound(f"no parkloop store at {store_path}")
        self.path = store_path / AUTH_FILE
        self._lock = threading.Lock()
        self._seen_version: int | None = None  # PRAGMA data_version at the last snapshot
        self._wrote = False  # our own commits do not move our data_version
        self._admin: bytes | None = None
        with self._errors("opening"):
            if not self.path.exists():
                # digests only, but still nobody else's business
                os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
            self._con = sqlite3.connect(self.path, timeout=_BUSY_TIMEOUT_S,
                                        isolation_level=None, check_same_thread=False)
            try:
                self._con.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
                self._con.execute("PRAGMA journal_mode = WAL")
                self._migrate()
            except BaseException:
                self._con.close()
                raise

    def __repr__(self) -> str:
        return f"TokenBook({str(self.path)!r})"

    # --- device tokens ----------------------------------------------------------------------

    def issue(self, device_id: str) -> str:
        """Create or replace ``device_id``'s token and return it in clear, this once; the old
        token stops working (in a running server: within its reload interval)."""
        check_id("device_id", device_id)
        token = new_token()
        self._write(
            "INSERT INTO device_tokens (device_id, sha256, issued_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (device_id) DO UPDATE SET sha256 = excluded.sha256, "
            "issued_ms = excluded.issued_ms",
            (device_id, token_digest(token).hex(), _now_ms()), doing=f"issuing for {device_id}")
        return token

    def register(self, device_id: str) -> str:
        """Like :meth:`issue`, but raise :class:`DeviceAlreadyRegistered` where ``device_id``
        already has a token (what the admin API's "register a device" calls)."""
        check_id("device_id", device_id)
        token = new_token()
        added = self._write(
            "INSERT INTO device_tokens (device_id, sha256, issued_ms) VALUES (?, ?, ?) "
            "ON CONFLICT (device_id) DO NOTHING",
            (device_id, token_digest(token).hex(), _now_ms()), doing=f"registering {device_id}")
        if not added:
            raise DeviceAlreadyRegistered(device_id)
        return token

    def revoke(self, device_id: str) -> bool:
        """Remove ``device_id``'s token; False where it had none."""
        return self._write("DELETE FROM device_tokens WHERE device_id = ?", (device_id,),
                           doing=f"revoking {device_id}")

    def device_for(self, token: str) -> str | None:
        """The device ``token`` belongs to, or None (unknown, replaced or empty token)."""
        if not token:
            return None
        wanted = token_digest(token).hex()
        with self._lock, self._errors("looking a token up"):
            row = self._con.execute("SELECT device_id, sha256 FROM device_tokens "
                                    "WHERE sha256 = ?", (wanted,)).fetchone()
        if row is None or not hmac.compare_digest(str(row[1]), wanted):
            return None
        return str(row[0])

    def devices(self) -> list[DeviceToken]:
        """Every device that holds a token, by device id (digests are not shown)."""
        with self._lock, self._errors("listing devices"):
            rows = self._con.execute("SELECT device_id, issued_ms FROM device_tokens "
                                     "ORDER BY device_id").fetchall()
        return [DeviceToken(str(d), int(ms)) for d, ms in rows]

    def snapshot(self) -> dict[bytes, str]:
        """Every device token as ``{token_digest(token): device_id}``, for the server to hold in
        memory; :meth:`changed` turns True when it may be stale."""
        with self._lock, self._errors("reading tokens"):
            # read the version first: a commit in between costs one extra reload, never a miss
            version = self._data_version()
            rows = self._con.execute("SELECT sha256, device_id FROM device_tokens").fetchall()
            self._seen_version, self._wrote = version, False
        return {bytes.fromhex(h): str(d) for h, d in rows}

    def changed(self) -> bool:
        """True when tokens may have changed since the last :meth:`snapshot` (by any process or
        this instance; always True before the first). One cheap PRAGMA, no table read."""
        with self._lock, self._errors("checking for changes"):
            return (self._wrote or self._seen_version is None
                    or self._data_version() != self._seen_version)

    # --- the admin token --------------------------------------------------------------------

    def ensure_admin(self, env: Mapping[str, str] | None = None) -> str | None:
        """Settle the admin token (``env`` defaults to ``os.environ``): the one the environment
        sets, else the stored one, else a new one whose digest is stored. Return the clear token
        only when it was generated now, for the caller to print once; else None."""
        from_env = admin_token_from(os.environ if env is None else env)
        if from_env is not None:
            self._admin = token_digest(from_env)
            return None
        token = new_token()
        created = self._write(
            "INSERT INTO admin_token (id, sha256, issued_ms) VALUES (1, ?, ?) "
            "ON CONFLICT (id) DO NOTHING", (token_digest(token).hex(), _now_ms()),
            doing="storing the admin token")
        self._admin = self._stored_admin()  # another process may have stored one first
        return token if created else None

    def is_admin(self, token: str) -> bool:
        """Whether ``token`` is the admin token (constant-time compare). Before
        :meth:`ensure_admin`, the environment's token or else the stored one counts; False
        where there is neither."""
        if not token:
            return False
        if self._admin is None:
            from_env = admin_token_from(os.environ)
            self._admin = token_digest(from_env) if from_env else self._stored_admin()
        return self._admin is not None and hmac.compare_digest(token_digest(token), self._admin)

    # --- lifecycle and internals ------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _migrate(self) -> None:
        (version,) = self._con.execute("PRAGMA user_version").fetchone()
        if version > _SCHEMA_VERSION:
            raise StoreVersionError(f"{self.path} has schema version {version}; this parkloop "
                                    f"reads up to {_SCHEMA_VERSION}: upgrade parkloop")
        if version < _SCHEMA_VERSION:
            self._con.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:  # idempotent where another process raced us
                    self._con.execute(statement)
                self._con.execute("COMMIT")
            except BaseException:
                self._con.execute("ROLLBACK")
                raise

    def _write(self, sql: str, params: tuple[object, ...], *, doing: str) -> bool:
        """Run one write statement in its own transaction; True when it changed a row."""
        with self._lock, self._errors(doing):
            changed = self._con.execute(sql, params).rowcount > 0
            self._wrote = self._wrote or changed
            return changed

    def _stored_admin(self) -> bytes | None:
        with self._lock, self._errors("reading the admin token"):
            row = self._con.execute("SELECT sha256 FROM admin_token WHERE id = 1").fetchone()
        return None if row is None else bytes.fromhex(str(row[0]))

    def _data_version(self) -> int:
        return int(self._con.execute("PRAGMA data_version").fetchone()[0])

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn whatever SQLite or the file system raise into a one-line StoreError."""
        try:
            yield
        except sqlite3.Error as exc:
            raise StoreError(f"token file {self.path}: {doing} failed: {exc}") from exc
        except OSError as exc:
            raise StoreError(f"token file {self.path}: {doing} failed: {exc.strerror or exc}"
                             ) from exc


def _now_ms() -> int:
    return int(time.time() * 1000)
