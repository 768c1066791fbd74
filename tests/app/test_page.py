"""The driver's page, as a person uses it on a phone: signed in by the link `parkloop device
token --link` prints, it records a drive-park-walk day from the browser's (emulated)
geolocation through the API, goes offline for a while, shows the car where the person parked
once the decision time has passed, and sends yes, no and "I parked here"; another phone's
token sees nothing of it. Everything is checked against the API and, at the end, the store.
Screenshots: test-artifacts/app/."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from parkloop.facts.geo import haversine_m
from parkloop.store import Store
from tests.app.conftest import Phone, phone
from tests.app.trip import Trip, day
from tests.serve.conftest import ADMIN_TOKEN, Server

DEVICE = "phone-a"
OTHER = "phone-b"
OFFLINE = range(60, 95)
"""the fixes recorded with no connection: the walk after the first parking and into the stay"""


@dataclass
class Recorded:
    """The day recorded by the page of device A, which stays open for the later tests."""

    phone: Phone
    trip: Trip
    token: str


def cli_token(server: Server, device: str) -> str:
    """A device token as `parkloop device token DEVICE --link URL` prints it (on stdout), and
    the link (on stderr) that signs the phone in."""
    from tests.conftest import run_cli

    done = run_cli("device", "token", device, "--link", server.url, "--no-qr",
                   store=server.store)
    token = done.stdout.strip()
    assert f"{server.url}/app/#token={token}" in done.stderr
    return token


def fixes_stored(server: Server, device: str) -> int:
    r = httpx.get(f"{server.url}/v1/console/overview", headers=server.admin, timeout=30)
    return sum(d["n_fixes"] for d in r.json()["devices"] if d["device_id"] == device)


def wait_sent(p: Phone) -> None:
    expect(p.page.locator("#rec-status")).to_have_attribute("data-waiting", "0",
                                                            timeout=15_000)


@pytest.fixture(scope="module")
def recorded(browser: Any, app_server: Server) -> Iterator[Recorded]:
    token = cli_token(app_server, DEVICE)
    start_ms = (int(time.time()) - 3 * 3600) * 1000  # the day began three hours ago
    trip = day(start_ms)
    first = trip.fixes[0]
    with phone(browser, app_server, at=(first.lat, first.lon)) as p:
        page = p.page
        page.clock.install(time=(start_ms - 5_000) / 1000)  # the clock then runs to...
        page.clock.pause_at(start_ms / 1000)  # ...here, and moves on only with the day
        page.goto(f"{app_server.url}/app/#token={token}")
        expect(page.locator("#device")).to_have_text(DEVICE)
        assert "token" not in page.url  # out of the address bar and the history
        expect(page.locator("#car-title")).to_have_text("parkloop is not sure where your car is")
        p.shot("1-signed-in")

        page.click("#rec-toggle")
        expect(page.locator("#rec-badge")).to_be_visible()
        # watching starts with the position the phone has: the day's first fix
        expect(page.locator("#rec-status")).to_have_attribute("data-count", "1")
        now = start_ms
        for i, f in enumerate(trip.fixes[1:], start=1):
            if i == OFFLINE.start:
                p.context.set_offline(True)
            if i == OFFLINE.stop:
                p.context.set_offline(False)
            if i == OFFLINE.stop + 3:
                p.lose_next.add("events")  # stored, but the page never hears so
            page.clock.run_for(f.t_ms - now)  # the phone's clock: the fix's time
            now = f.t_ms
            p.context.set_geolocation({"latitude": f.lat, "longitude": f.lon,
                                       "accuracy": f.accuracy_m})
            expect(page.locator("#rec-status")).to_have_attribute("data-count", str(i + 1))
            if i == OFFLINE.stop - 1:
                assert page.locator("#rec-status").get_attribute("data-offline") == "true"
                assert int(page.locator("#rec-status").get_attribute("data-waiting")) > 0
                expect(page.locator("#rec-status")).to_contain_text("no connection")
                p.shot("2-recording-offline")
        page.click("#rec-toggle")
        expect(page.locator("#rec-badge")).to_be_hidden()
        page.clock.run_for(10_000)  # the outbox's retry
        wait_sent(p)
        app_server.wait_caught_up()
        page.clock.run_for(31_000)  # the page asks for the car again
        yield Recorded(p, trip, token)


def test_every_fix_arrives_once_offline_or_not(recorded: Recorded, app_server: Server) -> None:
    assert fixes_stored(app_server, DEVICE) == len(recorded.trip.fixes)
    expect(recorded.phone.page.locator("#sent-total")).to_have_attribute(
        "data-fixes", str(len(recorded.trip.fixes)))
    failed = set(recorded.phone.failed)
    assert any(f.startswith("web-") for f in failed)  # some batches did fail...
    sent = recorded.phone.page.evaluate(
        "JSON.parse(localStorage.getItem('parkloop.app.outbox.phone-a'))")
    by_id = {i["id"]: i["state"] for i in sent}
    # ...and were sent again under the same batch id: the lost answer's batch was stored once
    assert {by_id[f] for f in failed if f in by_id} <= {"stored", "duplicate"}
    assert "duplicate" in by_id.values()


def test_the_car_is_where_the_person_parked(recorded: Recorded, app_server: Server) -> None:
    page = recorded.phone.page
    car = page.locator("#car")
    expect(car).to_have_attribute("data-status", "parked")
    _, lat, lon = recorded.trip.parked[-1]
    shown = float(car.get_attribute("data-lat")), float(car.get_attribute("data-lon"))
    assert haversine_m(lat, lon, *shown) < 60
    answer = httpx.get(f"{app_server.url}/v1/devices/{DEVICE}/car", timeout=10,
                       headers={"Authorization": f"Bearer {recorded.token}"}).json()
    assert (answer["lat"], answer["lon"]) == shown
    expect(page.locator("#car-title")).to_have_text("Your car is here")
    expect(page.locator("#car-sure")).to_have_text("parkloop is very sure.")  # p = 1: a rule
    expect(page.locator("#car-when")).to_contain_text("Parked ")
    expect(page.locator("#car-where")).to_contain_text("east of you")
    assert page.locator("#walk").get_attribute("href").startswith(
        f"geo:{answer['lat']:.6f},{answer['lon']:.6f}")
    page.click("#car-details summary")
    expect(page.locator("#d-model")).to_have_text(answer["model_version"])
    expect(page.locator("#d-rules")).to_have_text(answer["rules_version"])
    # both parkings of the day, newest first
    rows = page.locator("#event-list li[data-ended]")
    expect(rows).to_have_count(2)
    ended = [int(x) for x in rows.evaluate_all("rs => rs.map(r => r.dataset.ended)")]
    assert [abs(e - t) < 60_000 for e, (t, _, _) in zip(ended, recorded.trip.parked[::-1],
                                                          strict=True)] == [True, True]
    p = recorded.phone
    p.shot("3-car")
    assert p.fits()


def test_yes_no_and_i_parked_here(recorded: Recorded, app_server: Server) -> None:
    p = recorded.phone
    page = p.page
    p.lose_next.add("feedback")  # "yes" is stored, its answer lost: the retry is a duplicate
    page.click("#ask button[data-say=yes]")
    page.click("#ask button[data-say=yes]")  # pressed twice: said once
    page.clock.run_for(10_000)
    expect(page.locator("#ask .said")).to_have_text("You said yes (received).")
    yes = page.locator("#sent-list li[data-id^=app-][data-state=duplicate]")
    expect(yes).to_have_count(1)  # the retry of the lost answer
    expect(yes).to_contain_text("Yes: parked ")
    page.locator("#event-list li[data-ended]").nth(1).locator("button[data-say=no]").click()
    expect(page.locator("#event-list li[data-ended]").nth(1).locator(".said")).to_have_text(
        "You said no (received).")
    page.click("#pin-here")
    expect(page.locator("#pin-said")).to_contain_text("Pinned your car at your position")
    sent = page.locator("#sent-list li[data-id^=app-]")
    expect(sent).to_have_count(3)
    expect(page.locator("#sent-list li[data-state=waiting]")).to_have_count(0)
    p.shot("4-answered")
    # the server's answer is now where the person pinned the car (their newest position)
    last, auth = recorded.trip.fixes[-1], {"Authorization": f"Bearer {recorded.token}"}
    deadline = time.monotonic() + 10
    while (car := httpx.get(f"{app_server.url}/v1/devices/{DEVICE}/car", headers=auth,
                            timeout=10).json())["reason"] != "you said you parked here":
        assert time.monotonic() < deadline, car
        time.sleep(0.05)
    assert (car["status"], car["p_parked"]) == ("parked", None)
    assert (car["lat"], car["lon"]) == pytest.approx((last.lat, last.lon))
    page.clock.run_for(30_000)  # the page's next look at the answer
    expect(page.locator("#car-sure")).to_have_text("You said you parked here.")


def test_a_reload_while_recording_loses_no_fix(browser: Any, app_server: Server,
                                               recorded: Recorded) -> None:
    token = cli_token(app_server, "phone-c")
    t0 = (int(time.time()) - 3600) * 1000
    with phone(browser, app_server, at=(48.2, 11.5)) as p:
        page = p.page
        page.clock.install(time=(t0 - 5_000) / 1000)
        page.clock.pause_at(t0 / 1000)
        page.goto(f"{app_server.url}/app/#token={token}")
        page.click("#rec-toggle")
        for i in range(1, 4):  # too few and too young to be sealed into a batch
            page.clock.run_for(5_000)
            p.context.set_geolocation({"latitude": 48.2 + i / 1e4, "longitude": 11.5,
                                       "accuracy": 5})
            expect(page.locator("#rec-status")).to_have_attribute("data-count", str(i + 1))
        assert page.locator("#rec-status").get_attribute("data-waiting") == "4"
        page.reload()  # or the tab closed and opened again: it records on
        expect(page.locator("#rec-badge")).to_be_visible()
        page.clock.run_for(60_000)  # the kept fixes' batch is a minute old: sealed and sent
        wait_sent(p)
        stored = fixes_stored(app_server, "phone-c")
        assert stored == 4 + int(page.locator("#rec-status").get_attribute("data-count"))


def test_the_page_s_words(recorded: Recorded) -> None:
    said = recorded.phone.page.evaluate("""async () => {
        const w = await import("/app/js/words.js");
        const me = {lat: 48, lon: 11};
        return [[0.95, 0.75, 0.55, 0.2, null].map(w.sureness),
                w.fromYou(me, 48.003, 11.004), w.fromYou(me, 48.0001, 11),
                w.fromYou(me, 47.98, 11), w.geoLink(48.1, 11.25),
                [{status: "unknown", reason: "unknown: too little evidence"},
                 {status: "driven_away"}, {status: "parked", lat: null},
                 {status: "something new"}].map(w.headline),
                [60_000 * 30, 60_000 * 130, 86_400_000 * 3].map((d) => w.ago(0, d))];
    }""")
    assert said == [
        ["parkloop is very sure", "parkloop is fairly sure",
         "parkloop thinks so, but is not sure", "parkloop is unsure", ""],
        "about 450 m north-east of you", "right where you are (11 m)", "2.2 km south of you",
        "geo:48.100000,11.250000?q=48.100000,11.250000(My car)",
        ["parkloop is not sure where your car is", "Your car has been driven away",
         "parkloop is not sure where your car is", "parkloop is not sure where your car is"],
        ["30 min ago", "2 h 10 min ago", "3 days ago"]]


def test_another_phone_sees_nothing_of_this_car(browser: Any, app_server: Server,
                                               recorded: Recorded) -> None:
    other = cli_token(app_server, OTHER)
    with phone(browser, app_server) as p:
        p.page.goto(f"{app_server.url}/app/")
        for wrong, says in (("plk_wrong", "parkloop does not know this token"),
                            (ADMIN_TOKEN, "that is the admin token")):
            p.page.fill("#token", wrong)
            p.page.click("#signin button[type=submit]")
            expect(p.page.locator("#signin-error")).to_contain_text(says)
        p.page.fill("#token", f"{app_server.url}/app/#token={other}")  # the link, pasted
        p.shot("5-sign-in")
        p.page.click("#signin button[type=submit]")
        expect(p.page.locator("#device")).to_have_text(OTHER)
        expect(p.page.locator("#car-title")).to_have_text(
            "parkloop is not sure where your car is")
        expect(p.page.locator("#car-sure")).to_have_text(
            "parkloop says: no data from this device yet.")
        asked = p.page.evaluate("""async ([device, token]) => Promise.all(
            ["car", "leg-ends", "stops"].map(async (what) => (await fetch(
                `/v1/devices/${device}/${what}`,
                {headers: {Authorization: `Bearer ${token}`}})).status))""", [DEVICE, other])
        assert asked == [404, 404, 404]
        p.shot("6-other-phone")


def test_the_store_holds_what_the_page_sent(recorded: Recorded, app_server: Server) -> None:
    app_server.stop()  # the store's only writer
    trip = recorded.trip
    with Store.open(app_server.store, read_only=True) as store:
        fixes = store.con.execute(
            "SELECT t_ms, lat, lon, accuracy_m FROM raw_fix WHERE device_id = ? ORDER BY t_ms",
            [DEVICE]).fetchall()
        feedback = store.con.execute(
            "SELECT parked_at_ms, lat, lon, parked FROM raw_feedback WHERE device_id = ? "
            "ORDER BY batch_no", [DEVICE]).fetchall()
        batches = store.con.execute(
            "SELECT batch_id FROM raw_batch WHERE device_id = ?", [DEVICE]).fetchall()
        quarantined = store.scalar("SELECT count(*) FROM quarantine")
    assert fixes == [(f.t_ms, f.lat, f.lon, f.accuracy_m) for f in trip.fixes]
    assert quarantined == 0
    assert all(b.startswith(("web-", "app-")) for (b,) in batches)
    yes, no, pin = feedback
    (p1_ms, *_), (p2_ms, *_) = trip.parked
    assert yes[3] is True
    assert abs(yes[0] - p2_ms) < 60_000  # about the car now
    assert no[3] is False
    assert abs(no[0] - p1_ms) < 60_000  # about the first parking
    last = trip.fixes[-1]
    assert pin[1:] == (last.lat, last.lon, True)
