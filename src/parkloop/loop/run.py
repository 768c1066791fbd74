"""One pass of the loop: monitors -> thresholds -> retrain -> gate -> publish, or roll back.

A pass

1. brings the facts of the loop's spec's rules version up to the raw watermark;
2. measures every monitor (:mod:`parkloop.loop.monitors`) for the champion and updates each
   one's alarm state with hysteresis (states start clear for each new champion);
3. rolls back, if the champion was published by the loop and, on labels newer than its
   training, calls fewer of them right than the champion it replaced by more than the
   configured margin (explicit labels only: implicit ones exist only where a model said
   "parked", which would favour the model saying it less);
4. otherwise, when a monitor is in alarm (or the rules changed), retrains the spec on the
   facts and labels up to the watermark — unless the label set is the one the champion was
   trained on, or one already tried, or the last retrain is younger than
   ``min_retrain_interval_s``: unchanged data never retrains, so it never publishes by
   chance. The challenger is published only if the spec's gate passes and it beats the
   champion model on the labelled leg ends the champion never saw (see
   :func:`parkloop.interpret.gate.gate`). A retrain that fails leaves the champion serving;
5. appends its record to the audit log (:mod:`parkloop.loop.audit`) and returns it.

``store`` holds the data; ``home`` is the store directory whose registry, specs, rules and
audit log the pass uses (the same directory, except for a server's loop, which passes over a
mirror of its raw data: see :mod:`parkloop.loop.mirror`).
"""

from __future__ import annotations

import fcntl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from parkloop.errors import ParkloopError
from parkloop.facts.build import build
from parkloop.facts.catalog import built_watermark
from parkloop.facts.inputs import raw_watermark
from parkloop.facts.rules import load_rules
from parkloop.interpret.gate import never_seen
from parkloop.interpret.labels import feedback_checks, leg_end_labels
from parkloop.interpret.model import ParkedModel
from parkloop.interpret.registry import Registry
from parkloop.interpret.spec import load_spec
from parkloop.interpret.train import REFERENCE, label_set, train
from parkloop.loop import audit
from parkloop.loop.config import LoopConfig, Threshold, load_config
from parkloop.loop.monitors import (
    BAD_SIDE,
    HIGH_IS_BAD,
    Champion,
    Reading,
    judge,
    measure,
    new_labels,
)

if TYPE_CHECKING:
    from parkloop.store import Store

Step = Callable[[str], None]

LOOP_ACTOR = "loop"
"""who the loop's publishes and rollbacks are recorded as (``loop:server``, ``loop:cli``)"""


def run_pass(store: Store, home: Path | None = None, *, actor: str = "cli",
             config: LoopConfig | None = None, step: Step = lambda _: None) -> dict[str, Any]:
    """One pass (see the module docstring); returns the audit record it appended."""
    home = Path(store.path if home is None else home)
    config = config or load_config(home)
    started = time.perf_counter()
    record: dict[str, Any] = {"at_ms": int(time.time() * 1000), "actor": actor}
    with _exclusive(home):
        try:
            record |= _pass(store, home, config, f"{LOOP_ACTOR}:{actor}", step,
                            audit.history(home))
        except ParkloopError as exc:
            record |= {"decision": "failed", "reason": str(exc)}
    record["seconds"] = round(time.perf_counter() - started, 3)
    audit.append(home, record)
    return record


def _pass(store: Store, home: Path, config: LoopConfig, actor: str, step: Step,
          past: list[dict[str, Any]]) -> dict[str, Any]:
    registry = Registry(home)
    spec = load_spec(config.schedule.spec, home)
    rules = load_rules(spec.rules, home)
    out: dict[str, Any] = {"spec": spec.identity, "rules_version": rules.identity}
    watermark = raw_watermark(store.con)
    out["raw_watermark"] = watermark
    built = built_watermark(store, rules.identity)
    if built is None or built < watermark:
        step(f"building facts {rules.identity}")
        t = time.perf_counter()
        build(store, rules)
        out["facts_build_s"] = round(time.perf_counter() - t, 3)

    version = registry.champion()
    out["champion"] = version
    if version is None:
        return out | {"decision": "skipped", "reason": "no champion is published yet: train "
                      "one with `parkloop model train --publish`"}
    step(f"measuring champion {version}")
    champion = _champion(registry, version)
    out["champion_watermark"] = champion.watermark
    rules_changed = champion.model.rules_version != rules.identity
    t = time.perf_counter()
    labels = leg_end_labels(store, rules.identity)
    readings = {} if rules_changed else measure(
        store, champion, config, rules_version=rules.identity, labels=labels,
        label_cap=spec.train.max_labels_per_device)
    out["monitors_s"] = round(time.perf_counter() - t, 3)
    previous = next((r for r in reversed(past) if r.get("champion") == version
                     and "monitors" in r), None)
    out["monitors"] = _states(readings, config, previous)
    out["fired"] = [n for n, m in out["monitors"].items() if m["fired"]]
    out["alarms"] = [n for n, m in out["monitors"].items() if m["alarm"]]
    if rules_changed:
        out["alarms"] = ["rules_changed"]
        out["fired"] = ["rules_changed"]

    rolled = _rollback_check(store, registry, champion, config, rules.identity, labels, actor)
    if rolled is not None:
        out["rollback"] = rolled
        if rolled["rolled_back"]:
            return out | {"decision": "rolled_back", "reason": rolled["reason"]}

    if not out["alarms"]:
        return out | {"decision": "kept", "reason": "no monitor is in alarm"}
    label_hash, _ = label_set(labels)
    skip = _no_retrain(champion, label_hash, spec.identity, rules_changed, past,
                       config) or _too_few_to_compare(labels, champion, config, rules_changed)
    if skip is not None:
        return out | {"decision": "kept", "reason": f"in alarm, but {skip}"}

    step(f"retraining {spec.identity} ({', '.join(out['alarms'])} in alarm)")
    checks = feedback_checks(store)
    verdicts = checks.column("verdict").to_pylist()
    retrain: dict[str, Any] = {
        "label_set_hash": label_hash, "labels": labels.num_rows,
        "feedback": {v: verdicts.count(v) for v in sorted(set(verdicts))}}
    out["retrain"] = retrain
    t = time.perf_counter()
    try:
        result = train(store, registry, spec, publish=True, actor=actor, labels=labels,
                       against="unseen", min_unseen=config.gate.min_unseen, step=step,
                       reason=f"loop: {', '.join(out['alarms'])} in alarm; gate passed")
    except ParkloopError as exc:
        retrain["seconds"] = round(time.perf_counter() - t, 3)
        return out | {"decision": "failed",
                      "reason": f"retraining failed, champion {version} keeps serving: {exc}"}
    retrain |= {"seconds": round(time.perf_counter() - t, 3), "version": result.version,
                "learner": result.chosen,
                "excluded_from_training": int(result.lineage["excluded_from_training"]),
                "metrics": _finite({k: result.metrics[k] for k in (
                    "nested_f1", "pr_auc", "precision", "recall", "n_labelled", "n_people")}),
                "gate": {"passed": result.gate.passed, "reasons": list(result.gate.reasons),
                         "figures": _finite(result.gate.figures)}}
    if result.published:
        return out | {"decision": "published", "reason": (
            f"version {result.version} replaces {version}: "
            f"{', '.join(out['alarms'])} in alarm and the gate passed")}
    return out | {"decision": "kept", "reason": (
        f"version {result.version} not published: " + "; ".join(result.gate.reasons))}


def _no_retrain(champion: Champion, label_hash: str, spec: str, rules_changed: bool,
                past: list[dict[str, Any]], config: LoopConfig) -> str | None:
    """Why a retrain would be pointless now, or None: the labels are those the champion was
    trained on, or were tried already with this spec, or the last retrain is too recent."""
    if label_hash == champion.label_set_hash and not rules_changed:
        return "the labels are those the champion was trained on: retraining would learn " \
            "nothing new"
    last = next((r for r in reversed(past) if r.get("retrain")), None)
    if last is None:
        return None
    if last["retrain"].get("label_set_hash") == label_hash and last.get("spec") == spec:
        return f"this label set was already tried on {_when(last['at_ms'])}: {last['reason']}"
    since_s = time.time() - last["at_ms"] / 1000
    if since_s < config.schedule.min_retrain_interval_s:
        return (f"the last retrain was {since_s:.0f} s ago: the next may start in "
                f"{config.schedule.min_retrain_interval_s - since_s:.0f} s "
                "(min_retrain_interval_s)")
    return None


def _too_few_to_compare(labels: pa.Table, champion: Champion, config: LoopConfig,
                        rules_changed: bool) -> str | None:
    """Why the gate could not compare a challenger with the champion yet: fewer labelled leg
    ends the champion never saw than ``gate.min_unseen``, or not both classes among them (a
    retrain then would only fail the gate and start the cooldown)."""
    if rules_changed:
        return None
    unseen = np.asarray(labels.column("parked"), bool)[never_seen(labels, champion.directory)]
    n, cars = len(unseen), int(unseen.sum())
    if n >= config.gate.min_unseen and 0 < cars < n:
        return None
    return (f"only {n} labelled leg ends the champion never saw ({cars} car ends): the gate "
            f"compares on at least {config.gate.min_unseen}, of both classes")


def _states(readings: dict[str, Reading], config: LoopConfig,
            previous: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Each monitor's reading with its thresholds and alarm state: it enters alarm when its
    value crosses ``alarm``, leaves it when back past ``clear``, and keeps its state when not
    measured."""
    out = {}
    for name, reading in readings.items():
        limits: Threshold = getattr(config.monitors, name)
        high = HIGH_IS_BAD[name]
        was = bool(previous and previous["monitors"].get(name, {}).get("alarm"))
        v = reading.value
        if v is None:
            alarm = was
        elif was:
            alarm = v > limits.clear if high else v < limits.clear
        else:
            alarm = v >= limits.alarm if high else v <= limits.alarm
        out[name] = {"value": None if v is None else round(v, 4), "n": reading.n,
                     "alarm": alarm, "fired": alarm and not was,
                     "threshold": {"alarm": limits.alarm, "clear": limits.clear,
                                   "min_samples": limits.min_samples,
                                   "bad": BAD_SIDE[name]},
                     "detail": reading.detail, **({"note": reading.note} if reading.note else {})}
    return out


def _rollback_check(store: Store, registry: Registry, champion: Champion, config: LoopConfig,
                    rules_version: str, labels: pa.Table, actor: str
                    ) -> dict[str, Any] | None:
    """Roll back a champion the loop published whose accuracy on the explicit labels newer
    than its training falls short of its predecessor's by more than the margin."""
    moves = registry.audit()
    last = moves[-1] if moves else None
    if (last is None or last.action != "publish" or last.version != champion.version
            or not last.actor.startswith(LOOP_ACTOR) or last.previous is None):
        return None
    labels = new_labels(labels, champion.watermark)
    out: dict[str, Any] = {"previous": last.previous, "labels": labels.num_rows,
                           "rolled_back": False}
    if labels.num_rows < config.rollback.min_samples:
        return out | {"reason": f"{labels.num_rows} labels since the publish, fewer than "
                      f"{config.rollback.min_samples}"}
    before = _champion(registry, last.previous)
    if before.model.rules_version != rules_version:
        return out | {"reason": f"version {last.previous} reads other rules"}
    y = np.asarray(labels.column("parked"), bool)
    acc = {}
    for who, c in (("champion", champion), ("previous_champion", before)):
        p = judge(store, c.model, labels, rules_version)
        acc[who] = float(np.mean((p >= c.model.threshold) == y))
    out["accuracy"] = {k: round(v, 4) for k, v in acc.items()}
    if acc["champion"] >= acc["previous_champion"] - config.rollback.margin:
        return out | {"reason": "live accuracy holds"}
    reason = (f"loop: version {champion.version}'s accuracy on {labels.num_rows} labels since "
              f"its publish, {acc['champion']:.3f}, fell below version {last.previous}'s "
              f"{acc['previous_champion']:.3f} by more than {config.rollback.margin}")
    registry.rollback(reason=reason, actor=actor)
    return out | {"rolled_back": True, "reason": reason}


def _champion(registry: Registry, version: str) -> Champion:
    directory = registry.artifacts(version)
    model = ParkedModel.load(directory)
    ref = directory / REFERENCE
    found = next((v for v in registry.versions() if v.version == version), None)
    tags = {} if found is None else found.tags
    return Champion(version, model, int(tags.get("raw_watermark") or 0),
                    tags.get("label_set_hash"), pq.read_table(ref) if ref.is_file() else None,
                    directory)


@contextmanager
def _exclusive(home: Path) -> Iterator[None]:
    """One pass at a time per store."""
    path = home / audit.LOOP_DIR / "pass.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ParkloopError(f"another loop pass is running on {home}") from None
        yield


def _finite(figures: dict[str, float]) -> dict[str, float | None]:
    return {k: round(float(v), 4) if np.isfinite(v) else None for k, v in figures.items()}


def _when(ms: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(ms / 1000))


