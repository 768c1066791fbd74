"""``parkloop status``."""

from __future__ import annotations

from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, open_store, out, print_json


def status(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """Show what the store holds: raw events by kind, batches, quarantine by reason, and the
    facts of each built rules version, and the registered model versions and the champion."""
    from parkloop.status import status as collect

    with open_store(store, read_only=True) as s:
        data = collect(s)
    if json:
        print_json(data)
        return
    raw = data["raw"]
    table = Table(title=f"parkloop store {data['store']}", show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    for kind, n in raw["events"].items():
        table.add_row(f"raw {kind} events", f"{n:,}")
    table.add_row("batches", f"{raw['batches']:,}")
    table.add_row("devices", f"{raw['devices']:,}")
    table.add_row("quarantined events", f"{raw['quarantined']:,}")
    for reason, n in raw["quarantined_by_reason"].items():
        table.add_row(f"  {reason}", f"{n:,}")
    for version, f in data["facts"].items():
        table.add_row(f"facts {version}", f"{f['stops']:,} stops, {f['leg_ends']:,} leg ends, "
                      f"{f['places']:,} places")
    models = data["models"]
    table.add_row("model versions", "?" if models["versions"] is None else
                  f"{models['versions']:,}")
    table.add_row("champion", models["champion"] or "none")
    out.print(table)
    if "error" in models:
        err.print(f"[bold red]registry:[/] {models['error']}", highlight=False, soft_wrap=True)
