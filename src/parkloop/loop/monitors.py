"""Monitors: how the data the champion has not seen compares with what it was trained on.

Everything here reads only "recent" data, so a pass costs seconds however long the store's
history: leg ends of the champion's rules version that came from raw batches after its raw
watermark (per device, from its first new fix on), within ``window_days`` of the device's
newest; and labels whose raw event arrived after the watermark. Each monitor gives one
number, or none where its sample is smaller than its ``min_samples``:

``drift``
    The share of the champion's features whose distribution moved, recent leg ends against
    the training reference stored with the model. Per feature a two-sample Kolmogorov-Smirnov
    test (:func:`scipy.stats.ks_2samp`): distribution-free, with a null distribution known
    at every sample size (exact for small samples, asymptotic for large), so a feature that
    did not move is called moved with probability at most ``alpha`` whatever the sample size
    — ties (counts, flags) only make it conservative. Bonferroni over the features keeps the
    chance that a pass calls *any* unmoved feature moved at most ``alpha``. With thousands of
    leg ends even a negligible shift is significant, so a feature also needs a KS statistic
    of at least ``min_effect`` (the largest gap between the two distribution functions).
``accuracy``
    The share of recent labels the champion calls right: label events and vetted feedback
    (:func:`parkloop.interpret.labels.leg_end_labels`), and implicit labels read from later
    raw data — for a leg end the champion called parked, the device's next vehicle leg
    starting within :data:`~parkloop.interpret.parking.MOVED_M` of it confirms the answer,
    one starting more than ``implicit_far_m`` away denies it. Each device counts with at
    most the spec's ``max_labels_per_device`` (its latest), so no one device moves it.
``new_labels``
    How many labelled leg ends came from raw events after the champion's watermark.
``parked_share``
    How far the share of recent leg ends the champion calls parked is from the same share
    on its training reference.
``confidence``
    How much the champion's mean confidence ``|2p - 1|`` dropped from its reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from scipy.stats import ks_2samp

from parkloop.errors import ModelError
from parkloop.interpret.model import one_thread
from parkloop.interpret.parking import MOVED_M

# the monitors' bad sides are declared beside their thresholds; still importable from here
from parkloop.loop.config import BAD_SIDE as BAD_SIDE
from parkloop.loop.config import HIGH_IS_BAD as HIGH_IS_BAD

if TYPE_CHECKING:
    from parkloop.interpret.model import ParkedModel
    from parkloop.loop.config import Drift, LoopConfig
    from parkloop.store import Store

DAY_MS = 86_400_000
EXACT_KS = 100_000
"""largest product of the two sample sizes for which the KS p-value is computed exactly"""


@dataclass(frozen=True)
class Reading:
    """One monitor's value on this pass (None: not measured, ``note`` says why), the sample
    size behind it and what it is made of."""

    value: float | None
    n: int
    detail: dict[str, Any] = field(default_factory=dict)
    note: str = ""


@dataclass(frozen=True)
class Champion:
    """What the monitors compare with: the served model, the raw watermark and label set it
    was trained on, its training reference (None for a model registered without one) and the
    directory of its artifacts."""

    version: str
    model: ParkedModel
    watermark: int
    label_set_hash: str | None
    reference: pa.Table | None
    directory: Path


def recent_leg_ends(store: Store, rules_version: str, watermark: int,
                    window_days: float) -> pa.Table:
    """Leg ends (every column) from raw data after ``watermark``: per device, those ending at
    or after its first fix in a newer batch, and within ``window_days`` of its newest (per
    device: a phone uploading a year of history at once is judged on its latest weeks)."""
    return store.con.sql("""
        WITH new_from AS (
            SELECT device_id, min(t_ms) AS t_ms FROM raw_fix WHERE batch_no > $wm
            GROUP BY device_id),
        ends AS (
            SELECT e.* FROM facts_leg_end e JOIN new_from n
              ON n.device_id = e.device_id AND e.ended_ms >= n.t_ms
            WHERE e.rules_version = $rv)
        SELECT * EXCLUDE (newest) FROM (
            SELECT *, max(ended_ms) OVER (PARTITION BY device_id) AS newest FROM ends)
        WHERE ended_ms >= newest - $window
        ORDER BY device_id, ended_ms""", params={
        "wm": watermark, "rv": rules_version, "window": int(window_days * DAY_MS)}
    ).to_arrow_table()


def new_labels(labels: pa.Table, watermark: int) -> pa.Table:
    """The rows of ``labels`` (:func:`~parkloop.interpret.labels.leg_end_labels`) whose label
    came in a raw batch after ``watermark``."""
    return labels.filter(pc.greater(labels.column("batch_no"), watermark))


def implicit_labels(store: Store, ends: pa.Table, called: np.ndarray,
                    far_m: float) -> pa.Table:
    """For each leg end of ``ends`` called parked: its device's next vehicle leg starting
    within :data:`MOVED_M` confirms it (parked), one starting farther than ``far_m`` denies it;
    leg ends with no next vehicle leg yet, or one in between, stay unlabelled."""
    answered = ends.select(["rules_version", "device_id", "ended_ms", "lat", "lon"]).filter(
        pa.array(called, pa.bool_()))
    con = store.con.cursor()
    try:
        con.register("_answered", answered)
        return con.sql(f"""
            WITH next AS (
                SELECT a.device_id, a.ended_ms, 2 * 6371000.0 * asin(sqrt(
                    pow(sin(radians(l.start_lat - a.lat) / 2), 2)
                    + cos(radians(a.lat)) * cos(radians(l.start_lat))
                    * pow(sin(radians(l.start_lon - a.lon) / 2), 2))) AS moved_m
                FROM _answered a ASOF JOIN (
                    SELECT * FROM facts_leg WHERE mode = 'vehicle') l
                  ON l.rules_version = a.rules_version AND l.device_id = a.device_id
                 AND l.started_ms > a.ended_ms)
            SELECT device_id, ended_ms, moved_m <= {MOVED_M} AS parked, moved_m FROM next
            WHERE moved_m <= {MOVED_M} OR moved_m > {far_m}
            ORDER BY device_id, ended_ms""").to_arrow_table()
    finally:
        con.close()


def latest_per_device(devices: np.ndarray, ended_ms: np.ndarray, cap: int) -> np.ndarray:
    """Mask of each device's ``cap`` latest rows (every row where ``cap`` is 0).

    >>> latest_per_device(np.array(["a", "a", "a", "b"]), np.array([1, 3, 2, 1]), 2).tolist()
    [False, True, True, True]
    """
    if not cap or not len(devices):
        return np.ones(len(devices), bool)
    order = np.lexsort((-ended_ms, devices.astype(str)))
    sorted_devices = devices[order].astype(str)
    starts = np.r_[0, np.flatnonzero(sorted_devices[1:] != sorted_devices[:-1]) + 1]
    rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.r_[starts, len(order)]))
    keep = np.zeros(len(devices), bool)
    keep[order] = rank < cap
    return keep


def drift(reference: pa.Table, recent: pa.Table, features: tuple[str, ...],
          config: Drift) -> Reading:
    """The drift monitor (see the module docstring) over ``features``."""
    tested: dict[str, dict[str, float]] = {}
    for f in features:
        a = _finite(reference.column(f))
        b = _finite(recent.column(f))
        if min(len(a), len(b)) < max(config.min_samples, 1):
            continue
        # the exact null distribution where it is cheap; the asymptotic one is accurate
        # (and the exact one slow, or out of reach) beyond
        result = ks_2samp(a, b, method="auto" if len(a) * len(b) <= EXACT_KS else "asymp")
        tested[f] = {"statistic": float(result.statistic), "p": float(result.pvalue)}
    n = len(recent)
    if not tested:
        return Reading(None, n, note=f"fewer than {config.min_samples} recent leg ends with "
                       "values")
    level = config.alpha / len(tested)
    moved = sorted((f for f, t in tested.items()
                    if t["p"] < level and t["statistic"] >= config.min_effect),
                   key=lambda f: -tested[f]["statistic"])
    return Reading(len(moved) / len(tested), n, {
        "moved": moved, "tested": len(tested), "alpha_per_feature": level,
        "statistic": {f: round(t["statistic"], 4) for f, t in tested.items()}})


def measure(store: Store, champion: Champion, config: LoopConfig, *,
            rules_version: str, labels: pa.Table, label_cap: int) -> dict[str, Reading]:
    """Every monitor on this store's recent data for ``champion``; ``labels``: the rules
    version's :func:`~parkloop.interpret.labels.leg_end_labels`."""
    m = config.monitors
    recent = recent_leg_ends(store, rules_version, champion.watermark,
                             config.schedule.window_days)
    with one_thread():
        p = champion.model.predict(recent)
    called = champion.model.call(recent, p)
    readings: dict[str, Reading] = {}

    fresh = new_labels(labels, champion.watermark)
    readings["new_labels"] = Reading(float(fresh.num_rows), fresh.num_rows, {
        "by_source": _counts(fresh.column("source").to_pylist())})
    readings["accuracy"] = _accuracy(store, champion, recent, called, fresh, config,
                                     label_cap, rules_version)

    ref = champion.reference
    if ref is None:
        note = f"version {champion.version} has no training reference (registered without one)"
        for name in ("drift", "parked_share", "confidence"):
            readings[name] = Reading(None, recent.num_rows, note=note)
        return readings
    readings["drift"] = drift(ref, recent, champion.model.features, m.drift)
    ref_p = np.asarray(ref.column("p_parked"), float)
    ref_share = float(np.mean(champion.model.call(ref, ref_p))) if len(ref_p) else np.nan
    enough = recent.num_rows >= m.parked_share.min_samples and recent.num_rows > 0
    share = float(np.mean(called)) if len(called) else np.nan
    readings["parked_share"] = Reading(
        abs(share - ref_share) if enough else None, recent.num_rows,
        {"recent": _round(share), "reference": _round(ref_share)},
        "" if enough else f"fewer than {m.parked_share.min_samples} recent leg ends")
    enough = recent.num_rows >= m.confidence.min_samples and recent.num_rows > 0
    conf, ref_conf = _confidence(p), _confidence(ref_p)
    readings["confidence"] = Reading(
        ref_conf - conf if enough else None, recent.num_rows,
        {"recent": _round(conf), "reference": _round(ref_conf),
         "recent_p_quantiles": [_round(q) for q in np.quantile(p, [0.1, 0.5, 0.9])]
         if len(p) else []},
        "" if enough else f"fewer than {m.confidence.min_samples} recent leg ends")
    return readings


def _accuracy(store: Store, champion: Champion, recent: pa.Table, called: np.ndarray,
              fresh: pa.Table, config: LoopConfig, cap: int, rules_version: str) -> Reading:
    """The champion's calls against new explicit labels and implicit labels of recent leg
    ends (explicit ones win where both exist), each device's latest ``cap``."""
    cfg = config.monitors.accuracy
    explicit = fresh.select(["device_id", "ended_ms", "parked", "source"])
    implicit = implicit_labels(store, recent, called, cfg.implicit_far_m)
    have = set(zip(explicit.column("device_id").to_pylist(),
                   explicit.column("ended_ms").to_pylist(), strict=True))
    keep = [k not in have for k in zip(implicit.column("device_id").to_pylist(),
                                       implicit.column("ended_ms").to_pylist(), strict=True)]
    implicit = implicit.filter(pa.array(keep, pa.bool_()))
    labels = pa.concat_tables([explicit, pa.table({
        "device_id": implicit.column("device_id"), "ended_ms": implicit.column("ended_ms"),
        "parked": implicit.column("parked"),
        "source": pa.array(["implicit"] * implicit.num_rows, pa.string())})])
    devices = np.asarray(labels.column("device_id").to_pylist(), object)
    ended = np.asarray(labels.column("ended_ms"), np.int64)
    mask = latest_per_device(devices, ended, cap)
    labels = labels.filter(pa.array(mask))
    if labels.num_rows < max(cfg.min_samples, 1):
        return Reading(None, labels.num_rows, {"by_source": _counts(
            labels.column("source").to_pylist())},
            f"{labels.num_rows} recent labels, fewer than {cfg.min_samples}")
    p = judge(store, champion.model, labels, rules_version)
    right = (p >= champion.model.threshold) == np.asarray(labels.column("parked"), bool)
    sources = np.asarray(labels.column("source").to_pylist(), object)
    return Reading(float(np.mean(right)), labels.num_rows, {
        "by_source": {s: {"n": int(np.sum(sources == s)),
                          "accuracy": _round(float(np.mean(right[sources == s])))}
                      for s in sorted(set(sources.tolist()))},
        "capped": int((~mask).sum())})


def judge(store: Store, model: ParkedModel, keys: pa.Table, rules_version: str) -> np.ndarray:
    """``model``'s p(parked) for the leg ends named by ``keys`` (device_id, ended_ms), in
    their order."""
    con = store.con.cursor()
    try:
        con.register("_keys", keys.select(["device_id", "ended_ms"]).append_column(
            "_row", pa.array(np.arange(keys.num_rows), pa.int64())))
        ends = con.sql("""
            SELECT e.* FROM _keys k JOIN facts_leg_end e
              ON e.rules_version = $rv AND e.device_id = k.device_id
             AND e.ended_ms = k.ended_ms
            ORDER BY k._row""", params={"rv": rules_version}).to_arrow_table()
    finally:
        con.close()
    if ends.num_rows != keys.num_rows:  # a label names a leg end these facts do not have
        raise ModelError("labels name leg ends missing from the facts: rebuild them")
    with one_thread():
        p: np.ndarray = model.predict(ends)
    return p


def _finite(column: pa.ChunkedArray) -> np.ndarray:
    x = np.asarray(column.cast(pa.float64()).to_numpy(zero_copy_only=False), float)
    return np.asarray(x[np.isfinite(x)])


def _confidence(p: np.ndarray) -> float:
    return float(np.mean(np.abs(2 * p - 1))) if len(p) else float("nan")


def _counts(values: list[Any]) -> dict[str, int]:
    names, counts = np.unique(np.asarray(values, dtype=str), return_counts=True)
    return {str(k): int(v) for k, v in zip(names, counts, strict=True)}


def _round(x: float) -> float | None:
    return round(float(x), 4) if np.isfinite(x) else None
