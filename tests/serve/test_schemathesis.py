"""Schemathesis fuzzes the live API from its own ``/openapi.json``: every documented operation,
with schema-valid (positive) and schema-violating (negative) requests, as the admin and as a
device. No request may get a 5xx; every response must match what the document promises (status
code, content type, headers, body schema); schema-valid requests must be accepted and
schema-violating ones refused; and an operation that answers 2xx must refuse the same request
without a token or with a wrong one.

The operations are driven through ``APIOperation.as_strategy`` and Hypothesis rather than
``schemathesis.pytest.from_fixture``: the lazy loader reads ``request.node._nodeid``, which
pytest 9 no longer has, and the server's URL is only known once its fixture has started it.

The default run is bounded and seeded: :data:`MAX_EXAMPLES` derandomized examples per
operation, mode and identity, no shrinking, about half a minute in all (schemathesis also learns
from the server's answers, so the examples may still differ a little between runs).
``PARKLOOP_FUZZ_EXAMPLES=500`` makes a longer, random run.

The document is fuzzed as served; the tests at the end pin what it must say beyond what the
framework derives (open routes, the 400 for unparsable bodies, device id patterns, bounded
times).

Publishing and rolling back are fuzzed too: this module has a server of its own, so a changed
champion troubles no other test.
"""

from __future__ import annotations

import math
import os
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from parkloop.raw.events import ID_PATTERN
from tests.serve.conftest import Server

MAX_EXAMPLES = int(os.environ.get("PARKLOOP_FUZZ_EXAMPLES", "20"))
"""generated requests per operation, generation mode and identity; set
``PARKLOOP_FUZZ_EXAMPLES`` for a longer run with fresh random examples each time"""
SEEDED = "PARKLOOP_FUZZ_EXAMPLES" not in os.environ
DEVICE = "sim-default-s11-0001"
"""a simulated device with data; the device identity holds its token"""
OPERATIONS = [
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/v1/devices/{device_id}/car"),
    ("POST", "/v1/devices/{device_id}/events"),
    ("POST", "/v1/devices/{device_id}/feedback"),
    ("GET", "/v1/devices/{device_id}/stops"),
    ("GET", "/v1/devices/{device_id}/legs"),
    ("GET", "/v1/devices/{device_id}/places"),
    ("GET", "/v1/devices/{device_id}/leg-ends"),
    ("GET", "/v1/me"),
    ("POST", "/v1/devices"),
    ("GET", "/v1/models"),
    ("POST", "/v1/models/{version}/publish"),
    ("POST", "/v1/models/rollback"),
    ("GET", "/v1/rules"),
    ("POST", "/v1/loop/run"),
    ("GET", "/v1/loop/history"),
    ("GET", "/v1/console/overview"),
    ("GET", "/v1/console/devices/{device_id}"),
    ("GET", "/v1/console/devices/{device_id}/leg-ends/{ended_ms}"),
    ("GET", "/v1/console/devices/{device_id}/diff"),
    ("GET", "/v1/console/models"),
    ("GET", "/v1/console/models/{version}/report"),
    ("GET", "/v1/console/models/{version}/plots/{name}"),
    ("GET", "/v1/console/loop"),
    ("GET", "/v1/console/live"),
]
"""the documented operations: the REST contract (a new or renamed route must be added here)"""
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_headers_conformance, response_schema_conformance, ignored_auth,
          positive_data_acceptance, negative_data_rejection]
OPEN = ("/healthz", "/readyz")
"""operations that need no token"""
BODY_OPERATIONS = [(m, p) for m, p in OPERATIONS if m == "POST" and p != "/v1/loop/run"]
"""operations that read a body (starting a loop pass takes none)"""
INT64 = (-(2**63), 2**63 - 1)
"""what the server can store as a time in ms"""


def fuzz_runs() -> list[Any]:
    """(operation, mode, identity) for every operation, both modes, both identities; the open
    operations take no input at all, so they have nothing to break in negative mode."""
    return [pytest.param(operation, mode, who, id=f"{' '.join(operation)}-{mode.value}-{who}")
            for operation in OPERATIONS
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
            if not (mode is GenerationMode.NEGATIVE and operation[1] in OPEN)
            for who in ("admin", "device")]


@pytest.fixture(scope="module")
def served(sim_server: Server) -> dict[str, Any]:
    r = httpx.get(sim_server.url + "/openapi.json", timeout=30)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.fixture(scope="module")
def schema(served: dict[str, Any]) -> Any:
    schema = schemathesis.openapi.from_dict(served)
    rejection = schema.config.checks.negative_data_rejection
    # a batch or body over its limit is refused with 413, as documented
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    return schema


@pytest.fixture(scope="module")
def identities(sim_server: Server) -> dict[str, tuple[dict[str, str], str]]:
    """Who fuzzes: auth header, and the device whose id half of the requests use."""
    return {"admin": (sim_server.admin, "sim-default-s11-0000"),
            "device": (sim_server.token(DEVICE), DEVICE)}


def test_the_documented_operations_are_the_contract(served: dict[str, Any]) -> None:
    documented = [(method.upper(), path) for path, ops in served["paths"].items()
                  for method in ops]
    assert sorted(documented) == sorted(OPERATIONS)


@pytest.mark.parametrize(("operation", "mode", "who"), fuzz_runs())
def test_fuzzed_requests_get_documented_answers_and_no_5xx(
        sim_server: Server, schema: Any, identities: dict[str, tuple[dict[str, str], str]],
        operation: tuple[str, str], mode: GenerationMode, who: str) -> None:
    method, path = operation
    headers, device = identities[who]
    api_operation = schema[path][method]
    cases = api_operation.as_strategy(mode)
    if "{device_id}" in path:  # random ids mostly meet 404: half the time, ask about real data
        cases = st.one_of(cases, api_operation.as_strategy(
            mode, path_parameters={"device_id": device}))

    @given(case=cases)
    @settings(max_examples=MAX_EXAMPLES, derandomize=SEEDED, database=None, deadline=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(base_url=sim_server.url, headers=headers, checks=CHECKS,
                               timeout=30)

    fuzz()
    assert httpx.get(sim_server.url + "/healthz", timeout=10).status_code == 200


# --- what the served document must say ----------------------------------------------------

@pytest.mark.parametrize("path", OPEN)
def test_open_routes_are_documented_as_open(served: dict[str, Any], path: str) -> None:
    assert served["paths"][path]["get"].get("security") == []


@pytest.mark.parametrize("operation", BODY_OPERATIONS, ids=" ".join)
def test_unparsable_bodies_get_a_documented_status(
        sim_server: Server, served: dict[str, Any], operation: tuple[str, str]) -> None:
    method, path = operation
    url = sim_server.url + path.format(device_id=DEVICE, version="1")
    r = httpx.request(method, url, content=b'{"not utf-8": "\xc3\x28"}', timeout=30, headers={
        **sim_server.admin, "Content-Type": "application/json"})
    assert r.status_code == 400, r.text
    assert str(r.status_code) in served["paths"][path][method.lower()]["responses"]


@pytest.mark.parametrize("operation", [o for o in OPERATIONS if "{device_id}" in o[1]],
                         ids=" ".join)
def test_device_ids_are_documented(served: dict[str, Any], operation: tuple[str, str]) -> None:
    method, path = operation
    (parameter,) = [p for p in served["paths"][path][method.lower()]["parameters"]
                    if p["name"] == "device_id"]
    assert parameter["schema"].get("pattern") == ID_PATTERN.pattern
    assert parameter["schema"].get("maxLength") == 128


def test_feedback_times_are_bounded(served: dict[str, Any]) -> None:
    (integer,) = [b for b in served["components"]["schemas"]["FeedbackIn"]["properties"][
        "parked_at"]["anyOf"] if b["type"] == "integer"]
    assert INT64[0] <= integer.get("minimum", -math.inf)
    assert integer.get("maximum", math.inf) <= INT64[1]
