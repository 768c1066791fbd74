"""``parkloop device token DEVICE_ID | list``: device tokens, beside a running server or not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, out, print_json
from parkloop.serve.tokens import AUTH_FILE, TokenBook
from parkloop.store import DB_FILE, Store

app = typer.Typer(help="Device tokens: issue one (replacing any earlier), list who has one.",
                  no_args_is_help=True)


@app.command("token")
def token(device_id: Annotated[str, typer.Argument(help="The device to issue a token for.")],
          store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """Issue a new token for DEVICE_ID and print it (only the token, or --json); it replaces
    any earlier token of that device. Works while `parkloop serve` runs: the server accepts
    the new token, and refuses the old one, within its reload interval."""
    _check_store(store)
    with TokenBook(store) as book:
        clear = book.issue(device_id)
    if json:
        print_json({"device_id": device_id, "token": clear})
    else:
        typer.echo(clear)
    err.print(f"issued a new token for device {device_id!r}; it replaces any earlier one",
              highlight=False)


@app.command("list")
def list_(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """List the devices that hold a token and when it was issued (tokens are never shown:
    only their digests are stored)."""
    _check_store(store)
    if not (store / AUTH_FILE).is_file():
        devices = []  # reading does not create the token file
    else:
        with TokenBook(store) as book:
            devices = book.devices()
    if json:
        print_json([{"device_id": d.device_id, "issued_ms": d.issued_ms,
                     "issued_at": _iso(d.issued_ms)} for d in devices])
        return
    if not devices:
        err.print("no device holds a token yet")
        return
    table = Table()
    table.add_column("device")
    table.add_column("token issued (UTC)")
    for d in devices:
        table.add_row(d.device_id, _iso(d.issued_ms))
    out.print(table)


def _check_store(store: Path) -> None:
    """The store must exist, but its DuckDB is never opened here (a running server holds its
    write lock, and tokens must be issued beside it)."""
    if not (store / DB_FILE).is_file():
        Store.open(store)  # raises StoreNotFound with the one message for a missing store


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="seconds").replace(
        "+00:00", "Z")
