"""``parkloop serve``: the REST API on the embedded store (Granian: one API process, and the
live pipeline's worker processes beside it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated

import typer

from parkloop.cli._common import DEFAULT, StoreOpt, err
from parkloop.errors import ServingError
from parkloop.store import DB_FILE, Store

SERVE_STORE_ENV = "PARKLOOP_SERVE_STORE"
CORS_ENV = "PARKLOOP_SERVE_CORS"
LOOP_ENV = "PARKLOOP_SERVE_LOOP_INTERVAL"
WORKERS_ENV = "PARKLOOP_SERVE_WORKERS"


def preflight(store: Path) -> None:
    """Read what the server reads at start and that a user can get wrong (the admin token in
    the environment, the store's loop.toml and the spec it names), so that a mistake is one
    line here rather than a stack trace from the server's worker."""
    from parkloop.interpret.spec import load_spec
    from parkloop.loop.config import load_config
    from parkloop.serve.tokens import admin_token_from

    admin_token_from(os.environ)
    load_spec(load_config(store).schedule.spec, store)


def serve(store: StoreOpt = DEFAULT,
          host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8000,
          cors_origin: Annotated[list[str] | None, typer.Option(
              "--cors-origin", help="Allow browser calls from this origin (repeatable); "
              "CORS is off without it.")] = None,
          access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
          loop_interval: Annotated[float | None, typer.Option(
              "--loop-interval", min=0, metavar="SECONDS",
              help="Seconds between closed-loop passes (0: only on POST /v1/loop/run); "
              "default: schedule.interval_s of the store's loop.toml (300).")] = None,
          ssl_certfile: Annotated[Path | None, typer.Option(
              "--ssl-certfile", metavar="FILE", help="Serve https with this certificate "
              "(PEM; with --ssl-keyfile): phones' browsers share their position with https "
              "pages only (docs/app.md).")] = None,
          ssl_keyfile: Annotated[Path | None, typer.Option(
              "--ssl-keyfile", metavar="FILE", help="The certificate's private key (PEM, "
              "unencrypted).")] = None,
          workers: Annotated[int | None, typer.Option(
              "--workers", min=0, metavar="N",
              help="Live pipeline worker processes, each owning a share of the devices "
              "(0: the pipeline runs in the server's own process); default: one per core.")]
          = None) -> None:
    """Serve the API: ingest events, answer "where is my car?", publish models.

    The server is the store's only writer while it runs (`parkloop model publish` and
    `parkloop device token` still work beside it). At start it replays the raw log into the
    live pipeline (`/readyz` answers 503 until done). The closed loop runs in the
    background (`parkloop loop history` shows its passes). If no admin token is set in
    PARKLOOP_ADMIN_TOKEN, one is generated into the store and printed once. A store that
    does not exist yet is created empty (a new deployment: phones register and send). API
    docs at http://HOST:PORT/docs.
    """
    from granian import Granian
    from granian.constants import Interfaces, Loops
    from granian.log import LogLevels

    scheme = _tls(ssl_certfile, ssl_keyfile)
    new = not (store / DB_FILE).is_file()
    Store.create(store).close()  # a store held by another process: one line, not a traceback
    preflight(store)
    with socket.socket() as probe:  # something answering there already: say so in one line
        probe.settimeout(0.5)
        if port and probe.connect_ex((host if host not in ("0.0.0.0", "::") else "127.0.0.1",
                                      port)) == 0:
            raise ServingError(f"cannot listen on {host}:{port}: another program is using it")
    os.environ[SERVE_STORE_ENV] = str(store.resolve())
    os.environ[CORS_ENV] = ",".join(cors_origin or [])
    os.environ[LOOP_ENV] = "" if loop_interval is None else str(loop_interval)
    os.environ[WORKERS_ENV] = str(default_workers() if workers is None else workers)
    if new:
        err.print(f"created an empty store at {store}", highlight=False, soft_wrap=True)
    err.print(f"parkloop serving {store} on {scheme}://{host}:{port} (docs at /docs)",
              highlight=False)
    Granian("parkloop.serve.app:from_env", factory=True, address=host, port=port,
            interface=Interfaces.ASGI, workers=1, loop=Loops.uvloop, log_access=access_log,
            log_level=LogLevels.info, backlog=2048,
            ssl_cert=ssl_certfile and ssl_certfile.resolve(),
            ssl_key=ssl_keyfile and ssl_keyfile.resolve()).serve()


def default_workers() -> int:
    """One pipeline worker per core this process may use."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
               else os.cpu_count() or 1)


def _tls(certfile: Path | None, keyfile: Path | None) -> str:
    """"https" with both files readable PEM, "http" with neither; else a one-line error."""
    if (certfile is None) != (keyfile is None):
        raise ServingError("https needs both --ssl-certfile and --ssl-keyfile")
    for flag, path, what, marker in (
            ("--ssl-certfile", certfile, "certificate", b"-----BEGIN CERTIFICATE"),
            ("--ssl-keyfile", keyfile, "private key", b"PRIVATE KEY-----")):
        if path is None:
            return "http"
        try:
            head = path.read_bytes()[:1_000_000]
        except OSError as exc:
            raise ServingError(f"{flag} {path}: {exc.strerror or exc}") from None
        if marker not in head:
            raise ServingError(f"{flag} {path} is not a PEM {what} file")
        if b"ENCRYPTED" in head:
            raise ServingError(f"{flag} {path} is encrypted: give the key without a passphrase"
                               " (readable by the server's user only)")
    return "https"
