"""The console's JSON routes against a real server: admin-only, and what they show agrees with
the store and with the live pipeline's own API (a different code path: incremental facts)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from parkloop.facts.rules import load_rules
from parkloop.store import Store
from tests.serve.conftest import Server

pytestmark = pytest.mark.usefixtures("sim_server")


def get(server: Server, path: str, **params: Any) -> Any:
    r = httpx.get(server.url + path, params=params, headers=server.admin, timeout=30)
    assert r.status_code == 200, r.text
    return r.json()


@pytest.fixture(scope="module")
def device(sim_server: Server) -> str:
    """The device with the most vehicle-leg ends."""
    sim_server.wait_caught_up()
    devices = get(sim_server, "/v1/console/overview")["devices"]
    return max(devices, key=lambda d: len(
        get(sim_server, f"/v1/console/devices/{d['device_id']}")["leg_ends"]))["device_id"]


def test_console_routes_need_the_admin_token(sim_server: Server, device: str) -> None:
    someone = sim_server.token("console-stranger")
    for path in ("/v1/console/overview", f"/v1/console/devices/{device}", "/v1/console/models",
                 "/v1/console/loop", "/v1/console/live"):
        assert httpx.get(sim_server.url + path, timeout=10).status_code == 401
        r = httpx.get(sim_server.url + path, headers=someone, timeout=10)
        assert r.status_code == 403, path
        assert r.json()["error"] == "forbidden"


def test_the_page_is_served_without_data(sim_server: Server) -> None:
    page = httpx.get(sim_server.url + "/console/", timeout=10)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "admin token" in page.text
    assert httpx.get(sim_server.url + "/", timeout=10,
                     follow_redirects=True).url.path == "/console/"


def test_overview_counts_each_devices_fixes(sim_server: Server, sim_store_path: Path) -> None:
    shown = {d["device_id"]: d for d in get(sim_server, "/v1/console/overview")["devices"]}
    with Store.open(sim_store_path, read_only=True) as store:
        counted = dict(store.con.execute(
            "SELECT device_id, count(*) FROM raw_fix GROUP BY device_id").fetchall())
    assert {d: v["n_fixes"] for d, v in shown.items()} == counted


def test_device_facts_agree_with_the_live_pipeline(sim_server: Server, device: str) -> None:
    view = get(sim_server, f"/v1/console/devices/{device}")
    assert view["rules"]["identity"] == load_rules("v1").identity
    assert view["model"]["version"] == "1"
    live_stops = get(sim_server, f"/v1/devices/{device}/stops", limit=1000)["rows"]
    final = [{k: s[k] for k in view["stops"][0]} for s in live_stops if s["final"]]
    assert final, "the live pipeline has settled stops"
    assert all(s in view["stops"] for s in final)
    judged = get(sim_server, f"/v1/devices/{device}/leg-ends", limit=1000)["rows"]
    shown = {e["ended_ms"]: e for e in view["leg_ends"]}
    assert judged
    for e in judged:
        assert shown[e["ended_ms"]]["p_parked"] == pytest.approx(e["p_parked"], abs=1e-9)
        assert shown[e["ended_ms"]]["parked"] == e["parked"]


def test_a_time_range_and_thinning(sim_server: Server, device: str) -> None:
    whole = get(sim_server, f"/v1/console/devices/{device}")
    first, last = whole["span"]["first_ms"], whole["span"]["last_ms"]
    assert whole["raw"]["n"] == len(whole["raw"]["t"]) or len(whole["raw"]["t"]) == 4000
    assert whole["track"]["n"] <= whole["raw"]["n"]
    middle = (first + last) // 2
    half = get(sim_server, f"/v1/console/devices/{device}", from_ms=middle, to_ms=last,
               points=100)
    assert len(half["raw"]["t"]) <= 100 < half["raw"]["n"] < whole["raw"]["n"]
    assert min(half["raw"]["t"]) >= middle
    assert all(s["finished_ms"] >= middle for s in half["stops"])
    assert {e["ended_ms"] for e in half["leg_ends"]} == \
        {e["ended_ms"] for e in whole["leg_ends"] if e["ended_ms"] >= middle}


def test_a_leg_ends_lineage(sim_server: Server, device: str, sim_store_path: Path) -> None:
    end = get(sim_server, f"/v1/console/devices/{device}")["leg_ends"][-1]
    detail = get(sim_server, f"/v1/console/devices/{device}/leg-ends/{end['ended_ms']}")
    assert detail["p_parked"] == pytest.approx(end["p_parked"])
    assert detail["model"]["features"] == ["leg_p85_speed_mps"]
    assert detail["features"]["leg_p85_speed_mps"] is not None
    window = detail["lineage"]["window"]
    assert window == {"from_ms": end["leg_started_ms"], "to_ms": end["decided_ms"]}
    with Store.open(sim_store_path, read_only=True) as store:
        n = store.scalar("SELECT count(*) FROM raw_fix WHERE device_id = ? AND t_ms "
                         "BETWEEN ? AND ?", [device, window["from_ms"], window["to_ms"]])
    assert detail["lineage"]["n_fixes"] == n == \
        sum(b["n_fixes"] for b in detail["lineage"]["batches"])
    missing = httpx.get(sim_server.url + f"/v1/console/devices/{device}/leg-ends/1",
                        headers=sim_server.admin, timeout=10)
    assert missing.status_code == 404
    assert "no vehicle-leg end" in missing.json()["message"]


def test_rules_diff(sim_server: Server, device: str) -> None:
    same = get(sim_server, f"/v1/console/devices/{device}/diff", a="v1", b="v1")
    assert same["stops"]["same"] == len(same["a"]["stops"]) > 0
    assert same["stops"]["changed"] == same["stops"]["only_a"] == same["stops"]["only_b"] == []
    other = get(sim_server, f"/v1/console/devices/{device}/diff", a="v1",
                b="trackintel-sliding")
    for part in ("stops", "leg_ends"):
        d = other[part]
        assert d["same"] + len(d["changed"]) + len(d["only_a"]) == len(other["a"][part])
        assert d["same"] + len(d["changed"]) + len(d["only_b"]) == len(other["b"][part])
    assert other["stops"]["changed"] or other["stops"]["only_a"] or other["stops"]["only_b"]
    bad = httpx.get(sim_server.url + f"/v1/console/devices/{device}/diff",
                    params={"b": "nope"}, headers=sim_server.admin, timeout=10)
    assert bad.status_code == 404
    assert "no rules version 'nope'" in bad.json()["message"]


def test_unknown_device(sim_server: Server) -> None:
    r = httpx.get(sim_server.url + "/v1/console/devices/nobody", headers=sim_server.admin,
                  timeout=10)
    assert r.status_code == 404
    assert r.json()["message"] == "no raw events from device 'nobody'"


def test_models_and_their_history(sim_server: Server) -> None:
    models = get(sim_server, "/v1/console/models")
    assert models["champion"] == "1"
    assert [v["version"] for v in models["versions"]] == ["1", "2"]
    assert [(h["action"], h["version"]) for h in models["history"]] == [("publish", "1")]
    r = httpx.get(sim_server.url + "/v1/console/models/1/plots/pr_curve.png",
                  headers=sim_server.admin, timeout=10)
    assert r.status_code == 404  # the test's rule models were registered without a report


def test_loop_thresholds(sim_server: Server) -> None:
    loop = get(sim_server, "/v1/console/loop")
    assert loop["monitors"]["accuracy"]["bad"] == "below"
    assert loop["monitors"]["drift"]["alarm"] > loop["monitors"]["drift"]["clear"]
    assert loop["history"] == []
    assert loop["passes"] == 0


def test_live_counts_quarantine_and_latency(sim_server: Server) -> None:
    before = get(sim_server, "/v1/console/live")
    bad = {"kind": "fix", "t": 1_741_000_000_000, "lat": 123.0, "lon": 11.5}
    r = httpx.post(sim_server.url + "/v1/devices/console-live/events", timeout=10,
                   headers=sim_server.admin, json={"batch_id": "b1", "events": [bad]})
    assert r.status_code == 200, r.text
    after = get(sim_server, "/v1/console/live")
    [rejected] = r.json()["rejected"]
    reason = rejected["reason"]
    assert reason == "lat_out_of_range"
    assert after["quarantine"]["since_start"][reason] == \
        before["quarantine"]["since_start"].get(reason, 0) + 1
    assert after["quarantine"]["stored"][reason] >= 1
    route = after["requests"]["/v1/console/live"]
    assert route["count"] >= 1
    assert route["counts"] == sorted(route["counts"])


def test_live_names_the_hot_paths(sim_server: Server, device: str) -> None:
    """The plain Starlette routes (car, health) and the page's files are timed under their
    own templates, not lumped together as unmatched."""
    assert httpx.get(sim_server.url + f"/v1/devices/{device}/car", headers=sim_server.admin,
                     timeout=10).status_code == 200
    assert httpx.get(sim_server.url + "/console/js/app.js", timeout=10).status_code == 200
    routes = get(sim_server, "/v1/console/live")["requests"]
    assert {"/v1/devices/{device_id}/car", "/readyz", "/console/{path}"} <= set(routes)


def test_the_track_is_the_fixes_the_rules_kept(sim_server: Server, device: str,
                                               sim_store_path: Path) -> None:
    from parkloop.facts.build import read_device
    from parkloop.facts.pipeline import clean_fixes

    with Store.open(sim_store_path, read_only=True) as store:
        fixes, _ = read_device(store, device)
    kept, _ = clean_fixes(fixes, load_rules("v1"))
    view = get(sim_server, f"/v1/console/devices/{device}", points=20_000)
    assert view["raw"]["n"] == len(fixes) > view["track"]["n"] == len(kept)
    assert view["track"]["t"] == kept.t_ms.tolist()
