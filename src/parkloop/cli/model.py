"""``parkloop model train | list | publish VERSION | rollback | history``."""

from __future__ import annotations

import getpass
import math
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from parkloop.cli._common import DEFAULT, JsonOpt, StoreOpt, err, open_store, out, print_json
from parkloop.interpret.registry import AuditRecord, Registry
from parkloop.store import DB_FILE, Store

app = typer.Typer(help="Model versions: list them, publish one as champion, roll back, audit.",
                  no_args_is_help=True)

ReasonOpt = Annotated[str, typer.Option("--reason", help="Why, for the audit log.")]

SpecOpt = Annotated[str, typer.Option(
    "--spec", help="Model spec name (shipped, or STORE/specs/NAME.toml).")]


@app.command("train")
def train(store: StoreOpt = DEFAULT, spec: SpecOpt = "parked",
          publish: Annotated[bool, typer.Option(
              "--publish", help="Publish the new version if the spec's gate passes.")] = False,
          json: JsonOpt = False) -> None:
    """Train a model spec on the store's facts and labels: cross-validate its learners with
    people held out, fit the best, write its report (markdown + plots), register it with its
    lineage and, with --publish, make it champion if the spec's publish gate passes (exit 1
    if it does not; the version stays registered)."""
    # heavy imports here: this module is imported by every command, `status` included
    from parkloop.errors import ModelError
    from parkloop.interpret.spec import load_spec
    from parkloop.interpret.train import train as run_train

    model_spec = load_spec(spec, store)
    with open_store(store) as s, err.status("training") as status:
        result = run_train(s, Registry(store), model_spec, publish=publish,
                           actor=_actor(), step=lambda text: status.update(text))
    m = result.metrics
    if json:
        print_json({"version": result.version, "published": result.published,
                    "chosen": result.chosen,
                    "gate": {**asdict(result.gate), "figures": _finite(result.gate.figures)},
                    "metrics": _finite(m), "lineage": result.lineage,
                    "report": str(result.report)})
    else:
        out.print(f"version {result.version}: {result.chosen}, F1 {m['f1']:.3f} (nested "
                  f"{m['nested_f1']:.3f}), PR-AUC {m['pr_auc']:.3f}, end to end F1 "
                  f"{m['e2e_f1']:.3f}; rule baseline F1 {m.get('rule_f1', float('nan')):.3f}")
        out.print(f"report: {result.report}")
        if result.published:
            out.print(f"published: version {result.version} is the champion")
    if publish and not result.published:
        raise ModelError(f"version {result.version} not published: gate failed: "
                         + "; ".join(result.gate.reasons))


@app.command("list")
def list_(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """List registered model versions, oldest first: when, the champion (*), the rules version
    they were trained on, held-out metrics and the label set's hash."""
    versions = _registry(store).versions()
    if json:
        print_json([asdict(v) for v in versions])
        return
    if not versions:
        err.print("no model versions registered yet")
        return
    table = Table()
    for col in ("version", "created (UTC)", "champion", "rules", "F1", "PR-AUC", "e2e F1",
                "label set"):
        table.add_column(col, justify="right" if col in ("F1", "PR-AUC", "e2e F1") else "left")
    for v in versions:
        table.add_row(v.version, _when(v.created_ms), "*" if v.is_champion else "",
                      v.tags.get("rules_version", ""),
                      *(_metric(v.metrics, k) for k in ("f1", "pr_auc", "e2e_f1")),
                      v.tags.get("label_set_hash", "")[:12])
    out.print(table)


@app.command("publish")
def publish(version: Annotated[str, typer.Argument(help="The version to make champion.")],
            store: StoreOpt = DEFAULT, reason: ReasonOpt = "", json: JsonOpt = False) -> None:
    """Make VERSION the champion (the model serving answers); the move is audited."""
    registry = _registry(store)
    unchanged = registry.champion() == version.strip()
    registry.publish(version, reason=reason, actor=_actor())
    _report(registry, json, changed=not unchanged)


@app.command("rollback")
def rollback(store: StoreOpt = DEFAULT, reason: ReasonOpt = "", json: JsonOpt = False) -> None:
    """Make the previous champion champion again (undoing the latest publish); audited."""
    registry = _registry(store)
    registry.rollback(reason=reason, actor=_actor())
    _report(registry, json, changed=True)


@app.command("history")
def history(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """The audit log: every publish and rollback, oldest first, with who and why."""
    records = _registry(store).audit()
    if json:
        print_json([asdict(r) for r in records])
        return
    if not records:
        err.print("no version has been published yet")
        return
    table = Table()
    for col in ("at (UTC)", "action", "version", "previous", "actor", "reason"):
        table.add_column(col)
    for r in records:
        table.add_row(_when(r.at_ms), r.action, r.version, r.previous or "", r.actor, r.reason)
    out.print(table)


def _registry(store: Path) -> Registry:
    """The store's registry; the store must exist, but its DuckDB is never opened here (a
    running server holds its lock, and publishing must work beside it)."""
    if not (store / DB_FILE).is_file():
        Store.open(store)  # raises StoreNotFound with the one message for a missing store
    return Registry(store)


def _report(registry: Registry, json: bool, *, changed: bool) -> None:
    """The champion now and the audit record just written (none when nothing changed)."""
    records = registry.audit()
    record: AuditRecord | None = records[-1] if changed and records else None
    champion = registry.champion()
    if json:
        print_json({"champion": champion, "record": asdict(record) if record else None})
    elif record is None:
        err.print(f"version {champion} is already the champion; nothing changed",
                  highlight=False)
    else:
        err.print(f"{record.action}: champion {record.previous or 'none'} -> {record.version}",
                  highlight=False)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name in a bare container
        return "cli"


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _finite(figures: Mapping[str, float]) -> dict[str, float | None]:
    """Figures for --json: an undefined one (NaN, e.g. precision with nothing judged) is null,
    since NaN is not JSON."""
    return {k: v if math.isfinite(v) else None for k, v in figures.items()}


def _metric(metrics: Mapping[str, float], key: str) -> str:
    value = metrics.get(key)
    return "" if value is None else f"{value:.3f}"
