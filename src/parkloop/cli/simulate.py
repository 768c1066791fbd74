"""``parkloop simulate``."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from typing import Annotated

import typer

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, open_store, print_json, progress
from parkloop.simulate import SCENARIOS
from parkloop.simulate import simulate as run


def simulate(
    store: StoreOpt = DEFAULT,
    devices: Annotated[int, typer.Option(min=1, max=100_000, help="Number of simulated people, "
                                         "one phone each.")] = 10,
    days: Annotated[int, typer.Option(min=1, max=3650, help="Days to simulate.")] = 7,
    seed: Annotated[int, typer.Option(min=0, help="Random seed: same seed, same events.")] = 0,
    scenario: Annotated[str, typer.Option(
        help=f"Named variant: {', '.join(SCENARIOS)}.")] = "default",
    label_share: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="Share of people who label some of their legs' modes.")] = 0.3,
    start: Annotated[str, typer.Option(help="First simulated day (UTC date, YYYY-MM-DD).")]
    = "2025-03-03",
    to: Annotated[str | None, typer.Option(
        "--to", metavar="URL", help="Send the events to a running `parkloop serve` at URL "
        "(e.g. http://127.0.0.1:8000) instead of writing them into the store.")] = None,
    speed: Annotated[float | None, typer.Option(
        min=0.0, help="With --to: simulated seconds per wall second (3600: an hour a second);"
        " default as fast as the server takes them.")] = None,
    admin_token: Annotated[str | None, typer.Option(
        envvar="PARKLOOP_ADMIN_TOKEN", help="With --to: the server's admin token, to register"
        " the devices (or set PARKLOOP_ADMIN_TOKEN).")] = None,
    feedback_share: Annotated[float, typer.Option(
        min=0.0, max=1.0, help="With --to: share of people who also use the app: after each "
        "batch they ask where their car is, say yes or no to each new answer (they know where "
        "they parked) and report parkings it missed, as feedback.")] = 0.0,
    json: JsonOpt = False,
) -> None:
    """Write synthetic phone streams (fixes, activity, car links, labels) into the store as raw
    events, with ground truth (true parking events and leg modes) kept apart in the store's
    ``truth`` schema, which the pipeline never reads. With --to, send the same events to a
    running server over its API instead (no ground truth is written then)."""
    if scenario not in SCENARIOS:
        raise typer.BadParameter(f"{scenario!r} is not one of {', '.join(SCENARIOS)}",
                                 param_hint="--scenario")
    try:
        first_day = date.fromisoformat(start)
    except ValueError:
        raise typer.BadParameter(f"{start!r} is not a date like 2025-03-03",
                                 param_hint="--start") from None
    if to is None and feedback_share:
        raise typer.BadParameter("needs --to: only phones sending to a server give feedback",
                                 param_hint="--feedback-share")
    if to is not None:
        from parkloop.simulate.stream import stream

        if not admin_token:
            raise typer.BadParameter("--to needs the server's admin token (--admin-token or "
                                     "PARKLOOP_ADMIN_TOKEN)", param_hint="--admin-token")
        with progress() as bar:
            task = bar.add_task(f"streaming {devices} devices x {days} days to {to}")
            sent = stream(to, admin_token, devices=devices, days=days, seed=seed,
                          scenario=scenario, label_share=label_share, start=first_day,
                          speed=speed or None, feedback_share=feedback_share,
                          on_batch=lambda: bar.advance(task))
        if json:
            print_json(asdict(sent))
        else:
            err.print(sent.describe())
        return
    with open_store(store, create=True) as s, progress() as bar:
        task = bar.add_task(f"simulating {devices} devices x {days} days", total=devices)
        summary = run(s, devices=devices, days=days, seed=seed, scenario=scenario,
                      label_share=label_share, start=first_day,
                      on_device_done=lambda: bar.advance(task))
    if json:
        print_json(asdict(summary))
    else:
        err.print(summary.describe())
