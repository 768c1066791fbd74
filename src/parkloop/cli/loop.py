"""``parkloop loop run | history | plot``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, open_store, out, print_json
from parkloop.errors import ParkloopError, StoreLocked
from parkloop.store import DB_FILE, Store

app = typer.Typer(help="The closed loop: monitors -> retrain -> gate -> publish, and its "
                  "audit trail.", no_args_is_help=True)


@app.command("run")
def run(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """One pass: bring the facts up to date, measure every monitor against the champion,
    roll back a loop-published champion whose live accuracy fell short of its predecessor,
    and, if a monitor is in alarm, retrain the spec and publish the challenger if it passes
    the gate. Prints the pass's audit record. Thresholds: loop.toml in the store directory
    (merged over the shipped defaults; see docs/loop.md). With `parkloop serve` running,
    its loop runs on a schedule instead (POST /v1/loop/run starts a pass now)."""
    from parkloop.loop.run import run_pass

    try:
        with open_store(store) as s, err.status("loop pass") as status:
            record = run_pass(s, store, actor="cli", step=lambda text: status.update(text))
    except StoreLocked:
        raise StoreLocked(f"store {store} is held by another process (a running `parkloop "
                          "serve` runs the loop itself; POST /v1/loop/run starts a pass now)"
                          ) from None
    if json:
        print_json(record)
    else:
        _describe(record)
    if record["decision"] == "failed":
        raise ParkloopError(f"loop pass failed: {record['reason']}")


@app.command("history")
def history(store: StoreOpt = DEFAULT, json: JsonOpt = False,
            last: Annotated[int, typer.Option(min=0, help="Only the last N passes (0: all).")]
            = 0) -> None:
    """The loop's audit trail, oldest first: every pass's monitors, what fired, what was
    trained, the gate's numbers and the decision. Works beside a running server."""
    from parkloop.loop.audit import history as read

    records = read(_existing(store))
    records = records[-last:] if last else records
    if json:
        print_json(records)
        return
    if not records:
        err.print("no loop pass has run yet (`parkloop loop run`)")
        return
    table = Table()
    for col in ("at (UTC)", "by", "champion", "monitors", "fired", "decision", "reason"):
        table.add_column(col, overflow="fold")
    for r in records:
        table.add_row(_when(r["at_ms"]), r.get("actor", ""), r.get("champion") or "",
                      _values(r), ", ".join(r.get("fired", [])), r["decision"], r["reason"])
    out.print(table)


@app.command("plot")
def plot(store: StoreOpt = DEFAULT,
         out_file: Annotated[Path, typer.Option(
             "--out", help="PNG file to write.")] = Path("loop-monitors.png")) -> None:
    """Draw the monitors over time, with their thresholds and every publish and rollback
    (PNG)."""
    from parkloop.loop.audit import history as read
    from parkloop.loop.plot import plot_history

    records = read(_existing(store))
    if not records:
        raise ParkloopError("no loop pass has run yet (`parkloop loop run`)")
    plot_history(records, out_file)
    err.print(f"wrote {out_file} ({len(records)} pass{'es' if len(records) != 1 else ''})",
              highlight=False)


def _existing(store: Path) -> Path:
    if not (store / DB_FILE).is_file():
        Store.open(store)  # the one message for a missing store
    return store


def _describe(record: dict[str, Any]) -> None:
    for name, m in record.get("monitors", {}).items():
        value = "-" if m["value"] is None else f"{m['value']:.3f}"
        state = "ALARM" if m["alarm"] else "ok"
        extra = f" ({m['note']})" if m.get("note") else ""
        out.print(f"{name:>13}: {value:>8}  n={m['n']:<6} {state:<5} "
                  f"alarm {m['threshold']['bad']} {m['threshold']['alarm']}{extra}",
                  highlight=False)
    retrain = record.get("retrain")
    if retrain and "gate" in retrain:
        g = retrain["gate"]
        out.print(f"retrained: version {retrain['version']} ({retrain['learner']}, "
                  f"{retrain['labels']} labels, {retrain['seconds']:.1f} s), gate "
                  f"{'passed' if g['passed'] else 'failed'}: {_figures(g['figures'])}",
                  highlight=False)
    out.print(f"{record['decision']}: {record['reason']}", highlight=False)


def _figures(figures: dict[str, float | None]) -> str:
    return ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}"
                     for k, v in figures.items())


def _values(record: dict[str, Any]) -> str:
    def one(m: dict[str, Any]) -> str:
        value = "-" if m["value"] is None else f"{m['value']:.3g}"
        return value + ("!" if m["alarm"] else "")

    return " ".join(f"{n}={one(m)}" for n, m in record.get("monitors", {}).items())


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
