"""``parkloop device token DEVICE_ID | list``: device tokens, beside a running server or not."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer
from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, out, print_json
from parkloop.errors import RejectedInput
from parkloop.serve.tokens import AUTH_FILE, TokenBook
from parkloop.store import DB_FILE, Store

app = typer.Typer(help="Device tokens: issue one (replacing any earlier), list who has one.",
                  no_args_is_help=True)


@app.command("token")
def token(device_id: Annotated[str, typer.Argument(help="The device to issue a token for.")],
          store: StoreOpt = DEFAULT, json: JsonOpt = False,
          link: Annotated[str | None, typer.Option(
              "--link", metavar="URL", help="Also print the address that signs a phone in to "
              "the driver's page of the server at URL (as the phone reaches it, e.g. "
              "https://192.168.1.20:8443), and its QR code.")] = None,
          qr: Annotated[bool, typer.Option(help="With --link: draw the QR code.")] = True
          ) -> None:
    """Issue a new token for DEVICE_ID and print it (only the token, or --json); it replaces
    any earlier token of that device. Works while `parkloop serve` runs: the server accepts
    the new token, and refuses the old one, within its reload interval. With --link, the
    driver's page address (the token in its #fragment, which no server log sees) and its QR
    code follow on stderr (--json: as `link`)."""
    if link is not None:
        _check_url(link)
    _check_store(store)
    with TokenBook(store) as book:
        clear = book.issue(device_id)
    address = None
    if link is not None:
        from parkloop.serve.driver import page_link  # the web app's modules: only for --link

        address = page_link(link, clear)
    if json:
        print_json({"device_id": device_id, "token": clear} |
                   ({} if address is None else {"link": address}))
    else:
        typer.echo(clear)
    err.print(f"issued a new token for device {device_id!r}; it replaces any earlier one",
              highlight=False)
    if address is not None and not json:
        err.print(f"open on the phone: {address}", highlight=False, soft_wrap=True)
        if qr:
            import segno

            segno.make(address, error="l").terminal(out=sys.stderr, compact=True)


def _check_url(url: str) -> None:
    """The server's address as a phone reaches it: http(s)://HOST[:PORT][/PATH]; a plain
    http address other than this machine gets a warning (no geolocation there)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or \
            parts.fragment:
        raise RejectedInput(f"--link {url!r} is not a server address: give "
                            "https://HOST[:PORT], as the phone reaches the server")
    if parts.scheme == "http" and parts.hostname not in ("localhost", "127.0.0.1", "::1"):
        err.print("note: browsers share the phone's position only with https pages (or "
                  "localhost): serve with --ssl-certfile/--ssl-keyfile to record trips",
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
