"""``parkloop quarantine``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, open_store, out, print_json
from parkloop.raw.stats import quarantined_events


def quarantine(
    store: StoreOpt = DEFAULT,
    device: Annotated[str | None, typer.Option(help="Only this device's events.")] = None,
    reason: Annotated[str | None, typer.Option(
        help="Only events with this reason code (e.g. lat_out_of_range).")] = None,
    limit: Annotated[int, typer.Option(min=1, help="Show at most this many.")] = 50,
    json: JsonOpt = False,
) -> None:
    """List quarantined events, newest batches first: why each was rejected, where it came
    from (batch, position, file:line) and exactly what was sent."""
    with open_store(store, read_only=True) as s:
        rows = quarantined_events(s, device_id=device, reason=reason, limit=limit)
    if json:
        print_json(rows)
        return
    table = Table(show_lines=False)
    for col in ("device", "batch", "seq", "reason", "detail", "sent"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["device_id"], r["batch_id"], str(r["seq"]), r["reason"], r["detail"],
                      (r["payload"][:80] + "…") if len(r["payload"]) > 80 else r["payload"])
    out.print(table if rows else "no quarantined events")
