"""``parkloop facts build | list`` and ``parkloop export stops | parked``."""

from __future__ import annotations

from dataclasses import asdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from parkloop.cli._common import (
    DEFAULT,
    JsonOpt,
    StoreOpt,
    err,
    open_store,
    out,
    print_json,
    progress,
)
from parkloop.config import DEFAULT_RULES
from parkloop.store import DB_FILE

# the facts engine (numba kernels) is imported by the commands that use it: `parkloop --help`
# and the other commands start without it

app = typer.Typer(help="Build and list facts (stops, trips, legs, places, leg-end features).",
                  no_args_is_help=True)
export_app = typer.Typer(help="Export facts and answers as files.", no_args_is_help=True)

class Engine(StrEnum):
    duckdb = "duckdb"
    spark = "spark"


RulesOpt = Annotated[str, typer.Option(
    "--rules", help="Rules version name (shipped, or STORE/rules/NAME.toml).")]


@app.command("build")
def build(store: StoreOpt = DEFAULT, rules: RulesOpt = DEFAULT_RULES,
          engine: Annotated[Engine, typer.Option(
              help="duckdb: embedded, this machine; spark: Apache Spark (same facts, "
                   "byte for byte), for data one machine cannot hold.")] = Engine.duckdb,
          spark_master: Annotated[str | None, typer.Option(
              "--spark-master", metavar="URL",
              help="With --engine spark: local[\\*], spark://host:7077, ... (default: the "
                   "standard Spark settings, else local[\\*]).")] = None,
          raw: Annotated[str | None, typer.Option(
              "--raw", metavar="PARQUET",
              help="With --engine spark: read the raw events from this Parquet export (on "
                   "the cluster's storage) instead of the store.")] = None,
          json: JsonOpt = False) -> None:
    """Build a rules version's facts from every device's raw events, beside the facts of
    other versions; building the same version again gives identical facts, on either
    engine."""
    if engine is Engine.duckdb and (spark_master or raw):
        raise typer.BadParameter("--spark-master and --raw go with --engine spark",
                                 param_hint="--engine")
    from parkloop.facts.build import build as run_build
    from parkloop.facts.rules import load_rules

    version = load_rules(rules, store)
    if engine is Engine.spark:
        from parkloop.facts.spark import build_on_spark

        with open_store(store) as s, err.status(f"building {version.identity} on Spark"):
            report = build_on_spark(s, version, master=spark_master, raw=raw)
    else:
        with open_store(store) as s, progress() as bar:
            n = int(s.scalar("SELECT count(DISTINCT device_id) FROM raw_fix"))
            task = bar.add_task(f"building {version.identity}", total=n)
            report = run_build(s, version, on_device=lambda: bar.advance(task))
    if json:
        print_json(asdict(report))
    else:
        err.print(report.describe(), highlight=False)


@app.command("list")
def list_(store: StoreOpt = DEFAULT, json: JsonOpt = False) -> None:
    """List rules versions (shipped and the store's own) and what each build holds."""
    from parkloop.facts.catalog import list_versions

    has_store = (store / DB_FILE).is_file()
    if has_store:
        with open_store(store, read_only=True) as s:
            versions = list_versions(s, store)
    else:
        versions = list_versions(None, store)
    if json:
        print_json(versions)
        return
    table = Table()
    for col in ("rules", "identity", "built", "devices", "stops", "leg ends", "places"):
        table.add_column(col)
    for v in versions:
        b = v.get("build") or {}
        table.add_row(v["name"], v["identity"], "yes" if v["built"] else
                      ("stale" if b else "no"), *(f"{b[k]:,}" if b else "" for k in
                                                  ("n_devices", "stops", "leg_ends", "places")))
    out.print(table)


@export_app.command("stops")
def stops(out_file: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
          store: StoreOpt = DEFAULT, rules: RulesOpt = DEFAULT_RULES) -> None:
    """Write a rules version's stops as CSV: device_id, started_at, finished_at (UTC ISO
    8601), lat, lon, n_fixes, rules_version."""
    from parkloop.facts.catalog import export_stops
    from parkloop.facts.rules import load_rules

    version = load_rules(rules, store)
    with open_store(store, read_only=True) as s:
        n = export_stops(s, version, out_file)
    err.print(f"wrote {n:,} stops of {version.identity} to {out_file}", highlight=False)


@export_app.command("parked")
def parked(out_path: Annotated[Path, typer.Option(
               "--out", help="CSV file to write.", dir_okay=False, writable=True)],
           store: StoreOpt = DEFAULT,
           model: Annotated[str | None, typer.Option(
               "--model", help="Model version (default: the champion).")] = None) -> None:
    """Write every parking event of every device as CSV: device_id, parked_at (UTC ISO 8601,
    when the car stopped), lat, lon (where the car is), p_parked, model_version,
    rules_version. Leg ends the model has not judged yet are judged first, so the file is
    complete for the store as it is."""
    from parkloop.errors import ModelError
    from parkloop.interpret.model import ParkedModel
    from parkloop.interpret.parking import export_parked
    from parkloop.interpret.registry import Registry

    registry = Registry(store)
    with open_store(store) as s:
        version = model or registry.champion()
        if version is None:
            raise ModelError("no champion model: train one with "
                             "`parkloop model train --publish`")
        n = export_parked(s, ParkedModel.load(registry.artifacts(version)), version, out_path)
    err.print(f"{n:,} parking events (model {version}) -> {out_path}")


@export_app.command("training-set")
def training_set(out_path: Annotated[Path, typer.Option(
                     "--out", help="Parquet file to write.", dir_okay=False, writable=True)],
                 store: StoreOpt = DEFAULT, rules: RulesOpt = DEFAULT_RULES,
                 engine: Annotated[Engine, typer.Option(
                     help="Where to build it: duckdb (embedded) or spark.")] = Engine.duckdb,
                 spark_master: Annotated[str | None, typer.Option(
                     "--spark-master", metavar="URL",
                     help="With --engine spark: local[*], spark://host:7077, ...")] = None
                 ) -> None:
    """Write the labelled leg-end feature table of a built rules version as Parquet: one
    row per leg end a person's label or feedback reaches (parked or not, the stated mode,
    the raw event behind it) with every leg-end feature. What training reads; on Spark it
    is built where the facts are."""
    import pyarrow.parquet as pq

    from parkloop.errors import FactsError
    from parkloop.facts.catalog import built_watermark
    from parkloop.facts.rules import load_rules

    version = load_rules(rules, store)
    with open_store(store) as s:
        if built_watermark(s, version.identity) is None:
            raise FactsError(f"rules version {version.identity} is not built in this store; "
                             f"run `parkloop facts build --rules {version.name}` first")
        if engine is Engine.spark:
            from parkloop.interpret.spark import store_training_table

            with err.status("building the training set on Spark"):
                table = store_training_table(s, version.identity, master=spark_master)
        else:
            from parkloop.interpret.dataset import training_table

            table = training_table(s, version.identity)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_path)
    err.print(f"{table.num_rows:,} labelled leg ends ({engine.value}) -> {out_path}")
