"""The REST API's promises about who may do what and about bad input, proven against a real
``parkloop serve`` (one per module, over the simulated store).

Security: tokens travel as ``Authorization: Bearer TOKEN``; a device token reads and writes its
own device only; admin operations need the admin token; a bad token gets 401 on every /v1
route; another device's token learns nothing about whether a device exists; tokens are stored
as digests only; bodies are size-limited; CORS is off; a token issued by the CLI replaces the
old one in a running server.

Bad input: whatever a client sends, the answer is a 4xx with the JSON error shape
``{"error": CODE, "message": ONE LINE}`` naming the problem, never a 5xx, and the server stays
up. Invalid events in a batch are quarantined with their reasons, not silently dropped.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from parkloop.serve.tokens import token_digest
from tests.conftest import run_cli
from tests.serve.conftest import ADMIN_TOKEN, Server

OWN = "sim-default-s11-0000"
"""a simulated device with data; the module's device token is issued for it"""
OTHER = "sim-default-s11-0001"
"""a simulated device with data and no token"""
PEER = "api-peer-0000"
"""a registered device (it holds a token) that has sent nothing"""
MISSING = "api-never-seen-0000"
"""a device id the server has never heard of"""
T0 = 1_767_600_000_000  # 2026-01-05T08:00:00Z
MIB = 1024 * 1024
ROTATION_S = 2.5
"""a token issued by the CLI must be honoured (and the old one refused) within this, seconds"""


# --- helpers --------------------------------------------------------------------------------

def fix(i: int, **extra: Any) -> dict[str, Any]:
    """A valid location fix, ``i`` seconds after :data:`T0`."""
    return {"kind": "fix", "t": T0 + i * 1000, "lat": 48.137, "lon": 11.575, **extra}


FEEDBACK = {"parked_at": T0, "lat": 48.137, "lon": 11.575, "parked": True}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def token_of(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def error_of(r: httpx.Response, status: int) -> dict[str, str]:
    """Assert ``r`` is the API's JSON error with ``status``; return it."""
    assert r.status_code == status, f"{r.status_code} {r.text[:500]}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert isinstance(body, dict), body
    assert set(body) == {"error", "message"}, body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    assert isinstance(body["message"], str), body
    assert body["message"].strip(), body
    assert "\n" not in body["message"], body
    return body


def committed(api: httpx.Client) -> int:
    """The newest raw batch number the server has stored."""
    return int(api.get("/readyz").json()["raw_committed"])


def quarantined(api: httpx.Client) -> dict[str, float]:
    """``parkloop_events_quarantined_total`` by reason, from ``GET /metrics``."""
    r = api.get("/metrics")
    assert r.status_code == 200, r.text
    return {s.labels["reason"]: s.value
            for family in text_string_to_metric_families(r.text)
            if family.name == "parkloop_events_quarantined"
            for s in family.samples if s.name == "parkloop_events_quarantined_total"}


def assert_alive(api: httpx.Client) -> None:
    r = api.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"ok": True})


@dataclass(frozen=True)
class Call:
    """One API operation with a valid request, aimed at ``device`` where the path has one."""

    method: str
    path: str
    json: Any = None

    def send(self, api: httpx.Client, headers: dict[str, str] | None = None,
             device: str = OWN, **kwargs: Any) -> httpx.Response:
        if self.json is not None and "content" not in kwargs:
            kwargs["json"] = self.json
        return api.request(self.method, self.path.format(device=device),
                           headers=headers or {}, **kwargs)

    def __str__(self) -> str:
        return f"{self.method} {self.path}"


DEVICE_READS = [Call("GET", f"/v1/devices/{{device}}/{what}")
                for what in ("car", "stops", "legs", "places", "leg-ends")]
DEVICE_WRITES = [Call("POST", "/v1/devices/{device}/events",
                      {"batch_id": "auth-probe", "events": [fix(0)]}),
                 Call("POST", "/v1/devices/{device}/feedback", FEEDBACK)]
DEVICE_ROUTES = DEVICE_READS + DEVICE_WRITES
ADMIN_ROUTES = [Call("POST", "/v1/devices", {"device_id": "auth-probe-device"}),
                Call("GET", "/v1/models"),
                Call("POST", "/v1/models/1/publish"),  # 1 is the champion already: harmless
                Call("POST", "/v1/models/rollback"),
                Call("GET", "/v1/rules")]
ALL_ROUTES = DEVICE_ROUTES + ADMIN_ROUTES


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(sim_server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=sim_server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def admin(sim_server: Server) -> dict[str, str]:
    return sim_server.admin


@pytest.fixture(scope="module")
def own(sim_server: Server) -> dict[str, str]:
    """The device token of :data:`OWN`."""
    return sim_server.token(OWN)


@pytest.fixture(scope="module")
def peer(sim_server: Server) -> dict[str, str]:
    return sim_server.token(PEER)


# --- security: who may do what --------------------------------------------------------------

def test_healthz_needs_no_token(api: httpx.Client) -> None:
    assert_alive(api)


BAD_AUTH = {
    "missing": None,
    "basic": "Basic YWRtaW46c2VjcmV0",
    "bearer-and-nothing": "Bearer",
    "unknown-token": "Bearer plk_" + "A" * 43,
    "admin-token-without-scheme": ADMIN_TOKEN,
    "admin-token-other-scheme": f"Token {ADMIN_TOKEN}",
    "admin-token-with-suffix": f"Bearer {ADMIN_TOKEN}x",
}


@pytest.mark.parametrize("auth", BAD_AUTH.values(), ids=BAD_AUTH.keys())
@pytest.mark.parametrize("call", ALL_ROUTES, ids=str)
def test_a_bad_token_gets_401_on_every_route(api: httpx.Client, call: Call,
                                              auth: str | None) -> None:
    before = committed(api)
    r = call.send(api, {"Authorization": auth} if auth is not None else {})
    assert error_of(r, 401)["error"] == "unauthorized"
    assert committed(api) == before


@pytest.mark.parametrize("call", ADMIN_ROUTES, ids=str)
def test_admin_operations_refuse_a_device_token(api: httpx.Client, own: dict[str, str],
                                                 call: Call) -> None:
    assert error_of(call.send(api, own), 403)["error"] == "forbidden"


def test_admin_operations_answer_the_admin(api: httpx.Client, admin: dict[str, str]) -> None:
    """The other side of the 403s: the admin token is let through."""
    models = api.get("/v1/models", headers=admin)
    assert models.status_code == 200, models.text
    assert {m["version"]: m["is_champion"] for m in models.json()} == {"1": True, "2": False}
    rules = api.get("/v1/rules", headers=admin)
    assert rules.status_code == 200, rules.text
    assert [r["serving"] for r in rules.json()].count(True) == 1


@pytest.mark.parametrize("call", DEVICE_READS, ids=str)
def test_a_device_token_reads_its_own_device(api: httpx.Client, own: dict[str, str],
                                             call: Call) -> None:
    r = call.send(api, own)
    assert r.status_code == 200, r.text
    assert r.json()["device_id"] == OWN


def test_a_device_token_writes_its_own_device(api: httpx.Client, own: dict[str, str]) -> None:
    events = api.post(f"/v1/devices/{OWN}/events", headers=own,
                      json={"batch_id": "own-write", "events": [fix(0)]})
    assert events.status_code == 200, events.text
    assert (events.json()["device_id"], events.json()["n_stored"]) == (OWN, 1)
    feedback = api.post(f"/v1/devices/{OWN}/feedback", headers=own, json=FEEDBACK)
    assert feedback.status_code == 200, feedback.text
    assert feedback.json()["n_stored"] == 1


def test_feedback_sent_again_later_is_a_duplicate(api: httpx.Client,
                                                  own: dict[str, str]) -> None:
    """The server stamps feedback with when it arrived; a retry a moment later, under its
    feedback id or its content's, says the same thing and is stored once. Other content
    under the same id is a conflict."""
    for body in ({**FEEDBACK, "feedback_id": "retry-me", "lat": 40.1},
                 {**FEEDBACK, "lat": 40.2}):
        first = api.post(f"/v1/devices/{OWN}/feedback", headers=own, json=body)
        time.sleep(0.01)
        again = api.post(f"/v1/devices/{OWN}/feedback", headers=own, json=body)
        assert first.json()["status"] == "stored", first.text
        assert again.status_code == 200, again.text
        assert (again.json()["status"], again.json()["batch_no"]) == (
            "duplicate", first.json()["batch_no"])
    other = api.post(f"/v1/devices/{OWN}/feedback", headers=own,
                     json={**FEEDBACK, "feedback_id": "retry-me", "parked": False})
    error_of(other, 409)


@pytest.mark.parametrize("call", DEVICE_ROUTES, ids=str)
def test_another_devices_token_learns_nothing(api: httpx.Client, own: dict[str, str],
                                              peer: dict[str, str], call: Call) -> None:
    """Asking about a device with data, a registered one without data, and one that never
    existed gives one and the same answer, and writes nothing."""
    before = committed(api)
    answers = {device: call.send(api, own, device=device)
               for device in (OTHER, PEER, MISSING)}
    body = error_of(answers[OTHER], 404)
    for device, r in answers.items():
        assert (r.status_code, r.json()) == (404, body), device
    assert committed(api) == before


def test_tokens_are_stored_only_as_digests(sim_server: Server, api: httpx.Client,
                                           own: dict[str, str]) -> None:
    fresh = sim_server.token("api-digest-0000")
    r = api.post("/v1/devices/api-digest-0000/events", headers=fresh,
                 json={"batch_id": "digest", "events": [fix(0)]})
    assert r.status_code == 200, r.text
    files = [p for p in sim_server.store.rglob("*") if p.is_file()]
    data = {p: p.read_bytes() for p in files}
    tokens = [token_of(fresh), token_of(own), ADMIN_TOKEN]
    for token in tokens:
        secret = token.removeprefix("plk_").encode()
        leaks = [str(p.relative_to(sim_server.store)) for p, b in data.items() if secret in b]
        assert not leaks, f"a token is stored in clear in {leaks}"
        assert token not in sim_server.output(), "a token is in the server's log"
    # we did look where the tokens are kept: their digests are there
    auth = b"".join(b for p, b in data.items() if p.name.startswith("auth.sqlite"))
    assert token_digest(token_of(fresh)).hex().encode() in auth


def test_a_token_issued_by_the_cli_replaces_the_old_one(sim_server: Server,
                                                        api: httpx.Client) -> None:
    device = "api-rotate-0000"
    old = sim_server.token(device)
    car = f"/v1/devices/{device}/car"
    assert api.get(car, headers=old).status_code == 200
    new = run_cli("device", "token", device, store=sim_server.store).stdout.strip()
    deadline = time.monotonic() + ROTATION_S
    while True:
        statuses = (api.get(car, headers=bearer(new)).status_code,
                    api.get(car, headers=old).status_code)
        if statuses == (200, 401) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert statuses == (200, 401), f"new, old token -> {statuses} after {ROTATION_S} s"
    assert error_of(api.get(car, headers=old), 401)["error"] == "unauthorized"


def test_cors_is_off_by_default(api: httpx.Client, admin: dict[str, str]) -> None:
    origin = {"Origin": "https://evil.example"}
    r = api.get(f"/v1/devices/{OWN}/car", headers={**admin, **origin})
    assert r.status_code == 200
    assert not any(h.lower().startswith("access-control-") for h in r.headers), r.headers
    preflight = api.options("/v1/models", headers={
        **origin, "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization"})
    assert not 200 <= preflight.status_code < 300, preflight.status_code
    assert not any(h.lower().startswith("access-control-") for h in preflight.headers), \
        preflight.headers


# --- security: body size limits -------------------------------------------------------------

BODY_ROUTES = [DEVICE_WRITES[0], DEVICE_WRITES[1], ADMIN_ROUTES[0], ADMIN_ROUTES[2],
               ADMIN_ROUTES[3]]


@pytest.fixture(scope="module")
def oversized() -> bytes:
    """A JSON object a little over 8 MiB."""
    return b'{"batch_id":"oversized","events":[' + b",".join(
        [b'{"kind":"fix","t":0,"lat":0,"lon":0}'] * (9 * MIB // 37)) + b"]}"


@pytest.mark.parametrize("call", BODY_ROUTES, ids=str)
def test_a_body_over_8_mib_is_refused(sim_server: Server, api: httpx.Client,
                                      admin: dict[str, str], oversized: bytes,
                                      call: Call) -> None:
    before = committed(api)
    with httpx.Client(base_url=sim_server.url, timeout=60) as once:  # the server may hang up
        r = call.send(once, {**admin, "Content-Type": "application/json"}, content=oversized)
    assert int(r.request.headers["content-length"]) > 8 * MIB
    assert error_of(r, 413)["error"] == "body_too_large"
    assert committed(api) == before
    assert_alive(api)


@pytest.mark.parametrize("call", [pytest.param(c, id=str(c)) for c in BODY_ROUTES])
def test_a_chunked_body_over_8_mib_is_refused(sim_server: Server, api: httpx.Client,
                                              admin: dict[str, str], oversized: bytes,
                                              call: Call) -> None:
    def chunks() -> Iterator[bytes]:
        for i in range(0, len(oversized), 64 * 1024):
            yield oversized[i:i + 64 * 1024]

    before = committed(api)
    with httpx.Client(base_url=sim_server.url, timeout=60) as once:
        r = call.send(once, {**admin, "Content-Type": "application/json"}, content=chunks())
    assert "content-length" not in r.request.headers
    assert r.request.headers["transfer-encoding"] == "chunked"
    assert error_of(r, 413)["error"] == "body_too_large"
    assert committed(api) == before
    assert_alive(api)


# --- bad input: events ----------------------------------------------------------------------

def test_a_batch_over_20000_events_is_refused_and_nothing_stored(
        api: httpx.Client, admin: dict[str, str]) -> None:
    path = "/v1/devices/api-huge-0000/events"
    before = committed(api)
    r = api.post(path, headers=admin,
                 json={"batch_id": "huge", "events": [fix(i) for i in range(20_001)]})
    body = error_of(r, 413)
    assert body["error"] == "batch_too_large"
    assert "20000" in body["message"]
    assert committed(api) == before
    # nothing was kept under that batch id: other content under it is a new batch
    again = api.post(path, headers=admin, json={"batch_id": "huge", "events": [fix(0)]})
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "stored"


MIXED = [
    fix(0),
    fix(1, lat=95.0),                                       # 1: out of range
    {"kind": "teleport", "t": T0},                          # 2: unknown kind
    {"kind": "fix", "t": T0 + 3000, "lat": "48.1", "lon": 11.5},  # 3: a string for a number
    fix(4, colour="red"),                                   # 4: unknown field
    {"kind": "activity", "t": T0 + 5000, "activity": "flying"},   # 5: outside the vocabulary
    fix(6),
]
MIXED_REASONS = {1: "lat_out_of_range", 2: "unknown_kind", 3: "wrong_type",
                 4: "unknown_field", 5: "activity_unknown"}


def test_a_mixed_batch_stores_the_valid_events_and_quarantines_the_rest(
        api: httpx.Client, admin: dict[str, str]) -> None:
    before = quarantined(api)
    r = api.post("/v1/devices/api-mixed-0000/events", headers=admin,
                 json={"batch_id": "mixed", "events": MIXED})
    assert r.status_code == 200, r.text
    out = r.json()
    assert (out["status"], out["n_events"], out["n_stored"], out["n_quarantined"]) == \
        ("stored", 7, 2, 5)
    assert {e["seq"]: e["reason"] for e in out["rejected"]} == MIXED_REASONS
    assert all(e["detail"] for e in out["rejected"])
    assert out["reasons"] == {reason: 1 for reason in MIXED_REASONS.values()}
    after = quarantined(api)
    assert {reason: after.get(reason, 0) - before.get(reason, 0)
            for reason in MIXED_REASONS.values()} == out["reasons"]


def test_an_event_that_is_not_an_object_is_quarantined(api: httpx.Client,
                                                       admin: dict[str, str]) -> None:
    r = api.post("/v1/devices/api-mixed-0001/events", headers=admin,
                 json={"batch_id": "not-objects", "events": [fix(0), 5, "fix", None, fix(1)]})
    assert r.status_code == 200, r.text
    assert {e["seq"]: e["reason"] for e in r.json()["rejected"]} == \
        {1: "not_an_object", 2: "not_an_object", 3: "not_an_object"}
    assert r.json()["n_stored"] == 2


def test_a_retried_batch_is_stored_once_and_other_content_is_refused(
        api: httpx.Client, admin: dict[str, str]) -> None:
    path = "/v1/devices/api-retry-0000/events"
    batch = {"batch_id": "retry", "events": [fix(0), fix(1)]}
    first = api.post(path, headers=admin, json=batch)
    assert first.status_code == 200, first.text
    assert first.json()["status"] == "stored"
    stored = committed(api)
    # the same content, keys in another order and a time spelled in ISO 8601
    respelled = {"events": [{"lon": 11.575, "lat": 48.137, "t": "2026-01-05T08:00:00Z",
                             "kind": "fix"}, fix(1)], "batch_id": "retry"}
    for retry in (batch, respelled):
        r = api.post(path, headers=admin, json=retry)
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "duplicate"
        assert r.json()["batch_no"] == first.json()["batch_no"]
        assert r.json()["n_stored"] == 2
    conflict = api.post(path, headers=admin, json={"batch_id": "retry", "events": [fix(2)]})
    assert error_of(conflict, 409)["error"] == "batch_conflict"
    assert "retry" in conflict.json()["message"]
    assert committed(api) == stored


# --- bad input: always a 4xx naming the problem, never a 5xx --------------------------------

@dataclass(frozen=True)
class Bad:
    """A bad request (as the admin), the status it must get and a word its message names."""

    id: str
    method: str
    path: str
    status: int
    names: str
    json: Any = None
    content: bytes | None = None
    params: dict[str, Any] | None = None


EVENTS = "/v1/devices/api-input-0000/events"
FEEDBACK_PATH = "/v1/devices/api-input-0000/feedback"
BAD_INPUT = [
    # malformed JSON, non-object and empty bodies
    Bad("events-malformed-json", "POST", EVENTS, 400, "json", content=b'{"batch_id": "x",'),
    Bad("events-not-utf8", "POST", EVENTS, 400, "json", content=b'\xff\xfe{"batch_id"'),
    Bad("events-nan", "POST", EVENTS, 400, "json",
        content=b'{"batch_id": "x", "events": [{"kind": "fix", "t": 0, "lat": NaN}]}'),
    Bad("events-too-deep", "POST", EVENTS, 400, "json",
        content=b'{"batch_id": "x", "events": [' + b"[" * 5000 + b"]" * 5000 + b"]}"),
    Bad("events-empty-body", "POST", EVENTS, 400, "json", content=b""),
    Bad("events-array-body", "POST", EVENTS, 422, "body", json=[]),
    Bad("events-string-body", "POST", EVENTS, 422, "body", json="events"),
    Bad("events-null-body", "POST", EVENTS, 422, "body", content=b"null"),
    Bad("feedback-malformed-json", "POST", FEEDBACK_PATH, 400, "json",
        content=b'{"parked_at": 1'),
    Bad("feedback-empty-body", "POST", FEEDBACK_PATH, 422, "body", content=b""),
    Bad("feedback-array-body", "POST", FEEDBACK_PATH, 422, "body", json=[FEEDBACK]),
    Bad("devices-malformed-json", "POST", "/v1/devices", 400, "json", content=b"{"),
    Bad("devices-number-body", "POST", "/v1/devices", 422, "body", json=7),
    Bad("publish-array-body", "POST", "/v1/models/1/publish", 422, "body", json=[]),
    Bad("rollback-malformed-json", "POST", "/v1/models/rollback", 400, "json", content=b"{"),
    # wrong types
    Bad("events-batch-id-number", "POST", EVENTS, 422, "batch_id",
        json={"batch_id": 5, "events": []}),
    Bad("events-events-object", "POST", EVENTS, 422, "events",
        json={"batch_id": "x", "events": {}}),
    Bad("events-events-missing", "POST", EVENTS, 422, "events", json={"batch_id": "x"}),
    Bad("feedback-lat-string", "POST", FEEDBACK_PATH, 422, "lat",
        json={**FEEDBACK, "lat": "north"}),
    Bad("feedback-parked-missing", "POST", FEEDBACK_PATH, 422, "parked",
        json={k: v for k, v in FEEDBACK.items() if k != "parked"}),
    Bad("devices-id-number", "POST", "/v1/devices", 422, "device_id", json={"device_id": 7}),
    Bad("publish-reason-number", "POST", "/v1/models/1/publish", 422, "reason",
        json={"reason": 5}),
    Bad("stops-limit-text", "GET", f"/v1/devices/{OWN}/stops", 422, "limit",
        params={"limit": "many"}),
    Bad("leg-ends-since-text", "GET", f"/v1/devices/{OWN}/leg-ends", 422, "since",
        params={"since": "yesterday"}),
    # out of range
    Bad("feedback-lat-91", "POST", FEEDBACK_PATH, 422, "lat", json={**FEEDBACK, "lat": 91}),
    Bad("feedback-lon-minus-181", "POST", FEEDBACK_PATH, 422, "lon",
        json={**FEEDBACK, "lon": -181}),
    Bad("feedback-model-version-too-long", "POST", FEEDBACK_PATH, 422, "model_version",
        json={**FEEDBACK, "model_version": "m" * 129}),
    Bad("feedback-id-invalid", "POST", FEEDBACK_PATH, 422, "feedback_id",
        json={**FEEDBACK, "feedback_id": "no spaces allowed"}),
    Bad("events-batch-id-invalid", "POST", EVENTS, 422, "batch_id",
        json={"batch_id": "../etc", "events": []}),
    Bad("events-batch-id-too-long", "POST", EVENTS, 422, "batch_id",
        json={"batch_id": "b" * 129, "events": []}),
    Bad("publish-reason-too-long", "POST", "/v1/models/1/publish", 422, "reason",
        json={"reason": "r" * 501}),
    Bad("publish-version-too-long", "POST", "/v1/models/" + "9" * 33 + "/publish", 422,
        "version"),
    Bad("stops-limit-0", "GET", f"/v1/devices/{OWN}/stops", 422, "limit", params={"limit": 0}),
    Bad("legs-limit-1001", "GET", f"/v1/devices/{OWN}/legs", 422, "limit",
        params={"limit": 1001}),
    Bad("places-since-negative", "GET", f"/v1/devices/{OWN}/places", 422, "since",
        params={"since": -1}),
    # unknown fields at the top level
    Bad("events-unknown-field", "POST", EVENTS, 422, "colour",
        json={"batch_id": "x", "events": [], "colour": "red"}),
    Bad("feedback-unknown-field", "POST", FEEDBACK_PATH, 422, "colour",
        json={**FEEDBACK, "colour": "red"}),
    Bad("devices-unknown-field", "POST", "/v1/devices", 422, "colour",
        json={"device_id": "api-x-0000", "colour": "red"}),
    Bad("publish-unknown-field", "POST", "/v1/models/1/publish", 422, "colour",
        json={"reason": "x", "colour": "red"}),
    Bad("rollback-unknown-field", "POST", "/v1/models/rollback", 422, "colour",
        json={"colour": "red"}),
    # invalid device ids in the path
    Bad("events-device-id-space", "POST", "/v1/devices/bad id/events", 422, "device_id",
        json={"batch_id": "x", "events": []}),
    Bad("events-device-id-dash-first", "POST", "/v1/devices/-dash/events", 422, "device_id",
        json={"batch_id": "x", "events": []}),
    Bad("events-device-id-too-long", "POST", f"/v1/devices/{'d' * 129}/events", 422,
        "device_id", json={"batch_id": "x", "events": []}),
    Bad("feedback-device-id-unicode", "POST", "/v1/devices/caf\u00e9/feedback", 422,
        "device_id", json=FEEDBACK),
    Bad("devices-id-invalid", "POST", "/v1/devices", 422, "device_id",
        json={"device_id": "bad id"}),
    Bad("car-device-id-space", "GET", "/v1/devices/bad id/car", 404, "bad id"),
    Bad("stops-device-id-too-long", "GET", f"/v1/devices/{'d' * 300}/stops", 404, "ddd"),
    Bad("publish-unknown-version", "POST", "/v1/models/999/publish", 404, "999"),
]
BAD_INPUT_XFAIL = [
    pytest.param(Bad("feedback-parked-string", "POST", FEEDBACK_PATH, 422, "parked",
                     json={**FEEDBACK, "parked": "yes"}),
                 id="feedback-parked-string"),
    pytest.param(Bad("feedback-lat-numeric-string", "POST", FEEDBACK_PATH, 422, "lat",
                     json={**FEEDBACK, "lat": "48.1"}),
                 id="feedback-lat-numeric-string"),
    pytest.param(Bad("feedback-parked-at-huge", "POST", FEEDBACK_PATH, 422, "parked_at",
                     json={**FEEDBACK, "parked_at": 10**30}),
                 id="feedback-parked-at-huge"),
]


@pytest.mark.parametrize("bad", [*BAD_INPUT, *BAD_INPUT_XFAIL],
                         ids=lambda b: b.id if isinstance(b, Bad) else None)
def test_bad_input_gets_a_4xx_naming_the_problem(api: httpx.Client, admin: dict[str, str],
                                                 bad: Bad) -> None:
    before = committed(api)
    headers = {**admin, "Content-Type": "application/json"} if bad.content is not None \
        else admin
    r = api.request(bad.method, bad.path, headers=headers, json=bad.json, content=bad.content,
                    params=bad.params)
    body = error_of(r, bad.status)
    assert bad.names.lower() in body["message"].lower(), body
    assert committed(api) == before
    assert_alive(api)


BODY_ROUTES_WITH_BODIES = [
    pytest.param(Call("POST", "/v1/devices/{device}/events",
                      {"batch_id": "typed", "events": [fix(0)]}), id="events"),
    pytest.param(Call("POST", "/v1/devices/{device}/feedback", FEEDBACK), id="feedback"),
    pytest.param(Call("POST", "/v1/devices", {"device_id": "api-typed-0000"}), id="devices"),
    pytest.param(Call("POST", "/v1/models/1/publish", {"reason": "typed"}), id="publish"),
]


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded"])
@pytest.mark.parametrize("call", BODY_ROUTES_WITH_BODIES)
def test_a_wrong_content_type_is_refused_naming_it(api: httpx.Client, admin: dict[str, str],
                                                   call: Call, content_type: str) -> None:
    import orjson

    before = committed(api)
    r = call.send(api, {**admin, "Content-Type": content_type}, device="api-typed-0000",
                  content=orjson.dumps(call.json))
    body = error_of(r, 415)
    assert "content-type" in body["message"].lower() or "application/json" in body["message"]
    assert committed(api) == before




@pytest.mark.parametrize(("call", "kwargs"), [
    pytest.param(Call("POST", "/v1/devices/{device}/events"), {"json": []}, id="events"),
    pytest.param(Call("POST", "/v1/devices/{device}/feedback"), {"json": []}, id="feedback"),
    pytest.param(Call("POST", "/v1/devices"), {"json": []}, id="devices"),
    pytest.param(Call("POST", "/v1/models/1/publish"), {"json": []}, id="publish"),
    pytest.param(Call("GET", "/v1/devices/{device}/stops"), {"params": {"limit": 0}},
                 id="stops"),
])
def test_no_token_gets_401_before_the_input_is_judged(api: httpx.Client, call: Call,
                                                      kwargs: dict[str, Any]) -> None:
    assert error_of(call.send(api, {}, **kwargs), 401)["error"] == "unauthorized"


def test_the_server_is_still_up_and_ready(api: httpx.Client) -> None:
    assert_alive(api)
    r = api.get("/readyz")
    assert r.status_code == 200, r.text
    assert r.json()["ready"] is True
