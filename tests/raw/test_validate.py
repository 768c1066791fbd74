"""Validation rules: each one fires on its case and passes valid events."""

from __future__ import annotations

import pytest

from parkloop.raw.events import parse_events
from parkloop.raw.schema import BY_NAME
from parkloop.raw.validate import GPS_EPOCH_MS, Limits, check

NOW = 1_767_600_000_000  # 2026-01-05T08:00:00Z
FIX = {"kind": "fix", "t": NOW, "lat": 52.5, "lon": 13.4}


def verdict(event: dict[str, object], limits: Limits | None = None) -> list[str]:
    batch = parse_events("p", "b", [event])
    assert batch.rejects.num_rows == 0, batch.rejects.to_pylist()
    (kind,) = batch.tables
    bad, reasons, _ = check(BY_NAME[kind], batch.tables[kind], received_ms=NOW,
                                 limits=limits or Limits())
    return reasons[0].split(";") if bad[0] else []


@pytest.mark.parametrize(("change", "reason"), [
    ({"lat": 90.0001}, "lat_out_of_range"),
    ({"lat": -91}, "lat_out_of_range"),
    ({"lon": 180.5}, "lon_out_of_range"),
    ({"lat": float("nan")}, "lat_not_finite"),
    ({"lon": float("inf")}, "lon_not_finite"),
    ({"accuracy_m": -1}, "accuracy_m_out_of_range"),
    ({"speed_mps": 401}, "speed_mps_out_of_range"),
    ({"bearing_deg": 361}, "bearing_deg_out_of_range"),
    ({"altitude_m": -11_001}, "altitude_m_out_of_range"),
    ({"altitude_m": float("nan")}, "altitude_m_not_finite"),
    ({"provider": "g" * 129}, "provider_too_long"),
    ({"t": GPS_EPOCH_MS - 1}, "t_ms_before_gps_epoch"),
    ({"t": NOW + 86_400_001}, "t_ms_in_future"),
])
def test_fix_rules(change: dict[str, object], reason: str) -> None:
    assert verdict({**FIX, **change}) == [reason]


def test_valid_fix_at_the_edges_passes() -> None:
    assert verdict({**FIX, "lat": -90, "lon": 180, "accuracy_m": 0, "speed_mps": 0,
                    "bearing_deg": 360, "altitude_m": 100_000, "t": NOW + 86_400_000}) == []


def test_every_failed_rule_is_named() -> None:
    assert verdict({**FIX, "lat": 100, "lon": float("nan"), "t": 0}) == [
        "t_ms_before_gps_epoch", "lat_out_of_range", "lon_not_finite"]


@pytest.mark.parametrize(("event", "reason"), [
    ({"kind": "activity", "t": NOW, "activity": "levitating"}, "activity_unknown"),
    ({"kind": "activity", "t": NOW, "activity": "still", "confidence": 1.5},
     "confidence_out_of_range"),
    ({"kind": "vehicle_link", "t": NOW, "connected": True, "link": "wifi"}, "link_unknown"),
    ({"kind": "label", "t": NOW, "start": NOW, "end": NOW - 1, "mode": "car"},
     "label_ends_before_start"),
    ({"kind": "label", "t": NOW, "start": NOW - 8 * 86_400_000, "end": NOW, "mode": "car"},
     "label_span_too_long"),
    ({"kind": "label", "t": NOW, "start": NOW, "end": NOW, "mode": "hoverboard"},
     "mode_unknown"),
    ({"kind": "feedback", "t": NOW, "parked_at": NOW, "lat": 91, "lon": 0, "parked": True},
     "lat_out_of_range"),
])
def test_other_kinds_rules(event: dict[str, object], reason: str) -> None:
    assert verdict(event) == [reason]


def test_limits_are_configurable() -> None:
    assert verdict({**FIX, "t": NOW + 3_600_001}, Limits(max_ahead_ms=3_600_000)) == [
        "t_ms_in_future"]
