"""The driver's page in a real browser: Debian's Chromium on a phone's screen, driven by
Playwright with emulated geolocation and a controlled clock, against a real ``parkloop serve``
over a store whose champion is a rule model (tests/serve's). Chromium and what a page may not
do: tests/browser.py. Screenshots go to ``test-artifacts/app/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from tests.browser import PHONE, Tab
from tests.serve.conftest import Server, registry_template  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def app_server(registry_template: Path,  # noqa: F811 (the fixture imported above)
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server over a store with no events and rule model 1 (p85 speed >= 10 m/s) serving."""
    store = tmp_path_factory.mktemp("app") / "store"
    shutil.copytree(registry_template, store)
    server = Server(store)
    try:
        yield server.wait_ready()
    finally:
        server.stop()


@dataclass
class Phone(Tab):
    """One browser context on a phone's screen, and what its page asked of the network."""

    SUITE: ClassVar[str] = "app"
    context: Any = None
    failed: list[str] = field(default_factory=list)
    """POST bodies' ids of requests that got no answer (offline, or an answer lost)"""
    lose_next: set[str] = field(default_factory=set)
    """routes ("events", "feedback") whose next answer is lost after the server stored it"""


@contextmanager
def phone(browser: Any, server: Server, *,
          at: tuple[float, float] = (48.1372, 11.5756)) -> Iterator[Phone]:
    """A fresh phone-sized context that may use geolocation (emulated, at ``at``); on
    leaving, no request may have gone elsewhere than the server and the page may have logged
    no error."""
    context = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True,
                                  has_touch=True, permissions=["geolocation"],
                                  geolocation={"latitude": at[0], "longitude": at[1],
                                               "accuracy": 8})
    page = context.new_page()
    p = Phone(page, server, context=context)

    def route(r: Any) -> None:
        url = r.request.url
        if not p.at_home(url):
            r.abort()
            return
        what = url.rsplit("/", 1)[-1]
        if r.request.method == "POST" and what in p.lose_next:
            p.lose_next.discard(what)
            r.fetch()  # the server stores it; its answer never reaches the page
            r.abort("connectionreset")
            return
        r.continue_()

    page.route("**/*", route)
    page.on("requestfailed", lambda r: p.failed.append(_id(r)) if r.method == "POST" else None)
    # a request that failed (offline, refused) is logged by Chromium itself, not by the page
    page.on("console", lambda m: p.errors.append(m.text) if m.type == "error" and
            not m.text.startswith("Failed to load resource") else None)
    try:
        yield p
    finally:
        context.close()
    p.check()


def _id(request: Any) -> str:
    body = request.post_data_json or {}
    return str(body.get("batch_id") or body.get("feedback_id"))
