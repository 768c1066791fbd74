"""Each view of the console, clicked through in Chromium on a laptop's and a phone's screen;
what it shows is checked against the API's own answers, and each view is photographed
(test-artifacts/console/VIEW-SCREEN.png)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.browser import LAPTOP
from tests.console.conftest import Console, console_page
from tests.serve.conftest import Server


def number(console: Console, testid: str) -> float:
    return float(console.page.get_by_test_id(testid).inner_text().replace(",", ""))


def busiest(console: Console) -> str:
    """The device with the most vehicle-leg ends."""
    devices = console.api("/v1/console/overview")["devices"]
    return max(devices, key=lambda d: len(console.api(
        f"/v1/console/devices/{d['device_id']}")["leg_ends"]))["device_id"]


def test_devices_list(console: Console) -> None:
    console.open("#/device")
    rows = console.page.get_by_test_id("device-row")
    devices = console.api("/v1/console/overview")["devices"]
    expect(rows).to_have_count(len(devices))
    assert sorted(rows.evaluate_all("rs => rs.map(r => r.dataset.device)")) == \
        sorted(d["device_id"] for d in devices)
    console.page.get_by_label("filter devices").fill("shifted")
    expect(rows.locator("visible=true")).to_have_count(
        sum("shifted" in d["device_id"] for d in devices))
    console.shot("devices")
    assert console.fits()


def test_device_view(console: Console) -> None:
    device = busiest(console)
    console.open("#/device")
    console.page.get_by_role("link", name=device, exact=True).click()
    page = console.page
    expect(page.get_by_test_id("device-title")).to_have_text(device)
    shown = console.api(f"/v1/console/devices/{device}")
    expect(page.get_by_test_id("model-version")).to_have_text(shown["model"]["version"])
    expect(page.get_by_test_id("rules-version")).to_have_text(shown["rules"]["identity"])
    assert number(console, "stat-raw") == shown["raw"]["n"]
    assert number(console, "stat-track") == shown["track"]["n"]
    assert number(console, "stat-stops") == len(shown["stops"])
    assert number(console, "stat-leg-ends") == len(shown["leg_ends"])
    assert number(console, "stat-parked") == sum(e["parked"] for e in shown["leg_ends"])
    drawn = page.evaluate("""() => Object.fromEntries(Object.entries(window.__parkloopMap.layers)
        .map(([k, g]) => [k, g.getLayers().length]))""")
    assert page.evaluate("window.__parkloopMap.layers.raw.getLayers()[0].size()") == \
        len(shown["raw"]["t"])
    assert drawn["legEnds"] == len(shown["leg_ends"])
    assert drawn["stops"] == len(shown["stops"])
    assert drawn["places"] == len(shown["places"])
    car = httpx.get(console.server.url + f"/v1/devices/{device}/car",
                    headers=console.server.admin, timeout=10).json()
    expect(page.get_by_test_id("car-now")).to_have_attribute("data-status", car["status"])
    console.shot("device")
    assert console.fits()


def test_a_parking_events_features_and_lineage(console: Console) -> None:
    device = busiest(console)
    console.open(f"#/device/{device}")
    page = console.page
    rows = page.get_by_test_id("leg-end-row")
    ended = int(rows.first.get_attribute("data-ended") or 0)
    rows.first.click()
    detail = console.api(f"/v1/console/devices/{device}/leg-ends/{ended}")
    panel = page.get_by_test_id("leg-end-details")
    expect(panel.get_by_test_id("feature-row")).to_have_count(len(detail["features"]))
    expect(panel.get_by_test_id("lineage-batches").locator("tbody tr")).to_have_count(
        len(detail["lineage"]["batches"]))
    expect(panel).to_contain_text(detail["rules"]["identity"])
    expect(panel).to_contain_text(f"{detail['lineage']['n_fixes']} raw fixes")
    assert f"leg_end={ended}" in page.url
    console.shot("parking-event")
    assert console.fits()


def test_a_time_range(console: Console) -> None:
    device = busiest(console)
    console.open(f"#/device/{device}")
    page = console.page
    page.get_by_test_id("range-last-day").click()
    page.wait_for_function("() => /from=\\d+/.test(location.hash)")
    page.wait_for_selector("[data-testid=map][aria-busy=false]")
    span = console.api(f"/v1/console/devices/{device}")["span"]
    day = console.api(f"/v1/console/devices/{device}", from_ms=span["last_ms"] - 86_400_000,
                      to_ms=span["last_ms"])
    expect(page.get_by_test_id("stat-stops")).to_have_text(f"{len(day['stops']):,}")
    assert number(console, "stat-raw") == day["raw"]["n"]
    console.shot("device-last-day")
    page.get_by_test_id("range-all").click()
    expect(page.get_by_test_id("stat-raw")).to_have_text(
        f"{console.api(f'/v1/console/devices/{device}')['raw']['n']:,}")


def test_rules_side_by_side(console: Console) -> None:
    device = busiest(console)
    console.open(f"#/rules/{device}?a=v1")
    page = console.page
    page.get_by_test_id("diff-b").select_option("trackintel-sliding")
    diff = console.api(f"/v1/console/devices/{device}/diff", a="v1", b="trackintel-sliding")
    for part, key in (("stops", "stops"), ("leg-ends", "leg_ends")):
        expect(page.get_by_test_id(f"{part}-same")).to_have_text(str(diff[key]["same"]))
        for side in ("changed", "only_a", "only_b"):
            expect(page.get_by_test_id(f"{part}-{side.replace('_', '-')}")).to_have_text(
                str(len(diff[key][side])))
    n_diffs = sum(len(diff[k][s]) for k in ("stops", "leg_ends")
                  for s in ("changed", "only_a", "only_b"))
    expect(page.get_by_test_id("diff-row")).to_have_count(n_diffs)
    maps = page.evaluate("""() => Object.fromEntries(Object.entries(window.__parkloopDiffMaps)
        .map(([k, m]) => [k, m.layers.stops.getLayers().length]))""")
    assert maps == {"a": len(diff["a"]["stops"]), "b": len(diff["b"]["stops"])}
    console.shot("rules")
    assert console.fits()


def test_models(console: Console) -> None:
    models = console.api("/v1/console/models")
    console.open("#/models")
    page = console.page
    expect(page.get_by_test_id("model-row")).to_have_count(len(models["versions"]))
    expect(page.get_by_test_id("champion")).to_have_text(models["champion"])
    expect(page.get_by_test_id("history-row")).to_have_count(len(models["history"]))
    assert [h["actor"].split(":")[0] for h in models["history"]] == ["cli", "loop"]
    page.locator(f"[data-testid=model-row][data-version='{models['champion']}']").click()
    champion = next(v for v in models["versions"] if v["is_champion"])
    plots = page.get_by_test_id("model-plot")
    expect(plots).to_have_count(len(champion["plots"]))
    assert champion["plots"]
    page.wait_for_function("""() => [...document.querySelectorAll('[data-testid=model-plot]')]
        .every(img => img.complete && img.naturalWidth > 0)""")
    expect(page.get_by_test_id("model-metric")).to_have_count(len(champion["metrics"]))
    console.shot("models")
    assert console.fits()


def test_loop(console: Console) -> None:
    loop = console.api("/v1/console/loop")
    console.open("#/loop")
    page = console.page
    expect(page.get_by_test_id("loop-passes")).to_have_text(str(loop["passes"]))
    expect(page.get_by_test_id("loop-chart")).to_have_count(len(loop["monitors"]))
    decisions = page.get_by_test_id("decision-row")
    expect(decisions).to_have_count(len(loop["history"]))
    assert decisions.evaluate_all("rs => rs.map(r => r.dataset.decision)") == \
        [r["decision"] for r in reversed(loop["history"])]
    console.shot("loop")
    assert console.fits()


def test_live_updates_by_itself(console: Console) -> None:
    console.open("#/live")
    page = console.page
    stamp = page.get_by_test_id("live-updated")
    expect(stamp).not_to_be_empty()
    first = stamp.inner_text()
    rate = page.get_by_test_id("live-rate")
    reason = ""
    # a phone sending two batches a second, one event in each rejected, for two of the
    # view's polling intervals (live.js: POLL_MS)
    for i in range(8):
        reason = _send(console.server, f"live-{console.name}-{i}", start_s=60 * i)
        page.wait_for_timeout(500)
    expect(rate).not_to_have_text("0.0", timeout=5_000)
    row = page.locator(f"[data-testid=quarantine-row][data-reason='{reason}']")
    stored = console.api("/v1/console/live")["quarantine"]["stored"][reason]
    expect(row.locator("td").nth(2)).to_have_text(str(stored), timeout=5_000)
    expect(stamp).not_to_have_text(first)
    console.shot("live")
    assert console.fits()


def _send(server: Server, batch_id: str, start_s: int) -> str:
    """A batch of 30 fixes and one the store must reject; the reason it gives."""
    t0 = 1_741_000_000_000 + start_s * 1000
    fixes = [{"kind": "fix", "t": t0 + k * 1000, "lat": 48.1 + k * 1e-5, "lon": 11.5}
             for k in range(30)]
    bad = {"kind": "fix", "t": t0, "lat": 123.0, "lon": 11.5}
    r = httpx.post(server.url + "/v1/devices/console-live/events", headers=server.admin,
                   json={"batch_id": batch_id, "events": [*fixes, bad]}, timeout=10)
    assert r.status_code == 200, r.text
    [rejected] = r.json()["rejected"]
    return str(rejected["reason"])


@pytest.mark.parametrize(("token", "says"), [
    ("not-a-token", "That is not a token this server knows."),
    (None, "That is a device token: the console needs the admin token."),
])
def test_sign_in_refuses_other_tokens(browser: Any, console_server: Server,
                                      token: str | None, says: str) -> None:
    if token is None:
        token = console_server.token("console-phone")["Authorization"].split()[1]
    context = browser.new_context(viewport=LAPTOP)
    try:
        page = context.new_page()
        page.goto(f"{console_server.url}/console/#/models")
        page.fill("#token", token)
        page.click("#signin button[type=submit]")
        expect(page.locator("#signin-error")).to_have_text(says)
        expect(page.get_by_test_id("models-table")).to_have_count(0)
    finally:
        context.close()


def test_signing_out_forgets_the_token(browser: Any, console_server: Server) -> None:
    with console_page(browser, console_server, "signout", LAPTOP) as c:
        c.open("#/models")
        c.page.click("#signout")
        expect(c.page.locator("#signin")).to_be_visible()
        assert c.page.evaluate("sessionStorage.length") == 0
        c.page.reload()
        expect(c.page.locator("#signin")).to_be_visible()
