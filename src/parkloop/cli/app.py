"""The root ``parkloop`` command and the one place that turns errors into exit codes."""

from __future__ import annotations

import sys

import typer

from parkloop import __version__
from parkloop.cli import (
    device,
    facts,
    imports,
    loop,
    model,
    quarantine,
    serve,
    simulate,
    status,
)
from parkloop.cli._common import err
from parkloop.errors import ParkloopError

app = typer.Typer(
    name="parkloop",
    help="parkloop: phone location streams -> stops, trips, places -> 'where is my car?'.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode="markdown",
)
app.add_typer(imports.app, name="import")
app.add_typer(facts.app, name="facts")
app.add_typer(facts.export_app, name="export")
app.add_typer(model.app, name="model")
app.add_typer(device.app, name="device")
app.add_typer(loop.app, name="loop")
app.command("simulate")(simulate.simulate)
app.command("status")(status.status)
app.command("quarantine")(quarantine.quarantine)
app.command("serve")(serve.serve)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"parkloop {__version__}")
        raise typer.Exit


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Show the version and exit.")) -> None:
    """parkloop: phone location streams -> stops, trips, places -> 'where is my car?'."""


def run(argv: list[str] | None = None) -> int:
    """Run the CLI on ``argv`` (default: the process's arguments) and return its exit code: a
    ParkloopError becomes one line on stderr and exit code 1, a usage error exit code 2."""
    try:
        app(args=argv, prog_name="parkloop")
    except SystemExit as exc:
        if isinstance(exc.code, str):
            err.print(exc.code, highlight=False, markup=False)
        return exc.code if isinstance(exc.code, int) else 0 if exc.code is None else 1
    except ParkloopError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        return 1
    except KeyboardInterrupt:
        err.print("interrupted")
        return 130
    return 0


def main() -> None:
    """Entry point: :func:`run` on the process's arguments, its code the exit status."""
    sys.exit(run())
