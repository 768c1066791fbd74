"""``parkloop import geolife`` and ``parkloop import events``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, open_store, print_json, progress
from parkloop.raw.geolife import GeolifeSource, import_geolife
from parkloop.raw.importing import ImportReport
from parkloop.raw.jsonfile import import_events, read_text

app = typer.Typer(help="Import raw events from files.", no_args_is_help=True)

PathArg = Annotated[Path, typer.Argument(show_default=False)]


@app.command("geolife")
def geolife(path: PathArg, store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """Import "Geolife Trajectories 1.3" from its official zip (read in place) or its extracted
    folder. Person NNN becomes device geolife-NNN; each .plt file is one batch (re-importing
    adds nothing); labels.txt rows become label events. Malformed lines are quarantined with
    file and line number."""
    source = GeolifeSource(path)  # a bad path fails here, before a store is made
    with open_store(store, create=True) as s, progress() as bar:
        task = bar.add_task("importing GeoLife files", total=len(source.files))
        report = import_geolife(s, source, on_done=lambda k: bar.advance(task, k))
    _finish(report, json)


@app.command("events")
def events(path: PathArg, store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """Import event batches from a JSON file (one batch or a list) or JSON Lines (one batch
    per line): {"device_id": ..., "batch_id": ..., "events": [{"kind": "fix", "t": ...}]}.
    Invalid events are quarantined with their reasons; the rest of their batch is stored."""
    text = read_text(path)
    with open_store(store, create=True) as s, progress() as bar:
        task = bar.add_task("importing batches", total=None)
        report = import_events(s, path, text=text, on_done=lambda k: bar.advance(task, k))
    _finish(report, json)


def _finish(report: ImportReport, json: bool) -> None:
    if json:
        print_json(report.as_dict())
    else:
        err.print(report.describe(), highlight=False)
    if not report.ok:
        raise typer.Exit(1)
