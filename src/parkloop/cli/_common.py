"""What every command shares: the --store option, consoles and progress bars."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from parkloop.config import DEFAULT_STORE, STORE_ENV
from parkloop.store import Store

out = Console(soft_wrap=True)
"""Results (stdout)."""
err = Console(stderr=True)
"""Progress and messages (stderr), so that stdout stays machine-readable."""

StoreOpt = Annotated[Path, typer.Option(
    "--store", envvar=STORE_ENV, metavar="DIR", show_default=True,
    help=f"Store directory (or set {STORE_ENV}).")]
DEFAULT = DEFAULT_STORE

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


@contextmanager
def open_store(path: Path, *, create: bool = False, read_only: bool = False) -> Iterator[Store]:
    store = Store.create(path) if create else Store.open(path, read_only=read_only)
    try:
        yield store
    finally:
        store.close()


def progress() -> Progress:
    """A progress bar on stderr, shown only when stderr is a terminal."""
    return Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                    MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(),
                    console=err, transient=False, disable=not err.is_terminal)


def print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=False))
