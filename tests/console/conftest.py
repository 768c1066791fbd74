"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real
``parkloop serve`` over a store where the loop has retrained and published. Chromium and what
a page may not do: tests/browser.py. Screenshots go to ``test-artifacts/console/``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from parkloop.loop.run import run_pass
from parkloop.store import Store
from tests.browser import LAPTOP, PHONE, Tab
from tests.serve.conftest import ADMIN_TOKEN, Server


@pytest.fixture(scope="session")
def console_store(shifted: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shifted loop store after two loop passes: the first retrains and publishes
    version 2, the second keeps it. Two model versions with reports, a publish history, two
    audited passes, and a week of 24 people."""
    store = tmp_path_factory.mktemp("console") / "store"
    shutil.copytree(shifted, store)
    with Store.open(store) as s:
        assert run_pass(s, store, actor="cli")["decision"] == "published"
        run_pass(s, store, actor="cli")
    return store


@pytest.fixture(scope="module")
def console_server(console_store: Path) -> Iterator[Server]:
    server = Server(console_store)
    try:
        server.wait_ready()
        server.wait_caught_up()
        yield server
    finally:
        server.stop()


@dataclass
class Console(Tab):
    """One browser page signed in to the console, and what it asked the network for."""

    SUITE: ClassVar[str] = "console"
    name: str = ""
    """the screen's name, in the screenshots' names"""

    def open(self, hash_: str) -> None:
        self.page.goto(f"{self.server.url}/console/{hash_}")
        self.page.wait_for_selector("section.view[aria-busy=false]")

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.server.url + path, params=params, headers=self.server.admin,
                      timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def shot(self, view: str) -> Path:
        return super().shot(f"{view}-{self.name}")


@contextmanager
def console_page(browser: Any, server: Server, name: str, viewport: dict[str, int]
                 ) -> Iterator[Console]:
    """A fresh browser context signed in to the console; on leaving, no request may have
    gone elsewhere than the server and the page may have logged no error."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1,
                                  is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    page = context.new_page()
    c = Console(page, server, name=name)
    page.route("**/*", lambda route: route.continue_() if c.at_home(route.request.url)
               else route.abort())
    page.on("console", lambda m: c.errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/console/")
    page.fill("#token", ADMIN_TOKEN)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("section.view[aria-busy=false]")
    try:
        yield c
    finally:
        context.close()
    c.check()


@pytest.fixture(scope="module", params=[("laptop", LAPTOP), ("phone", PHONE)],
                ids=["laptop", "phone"])
def console(request: pytest.FixtureRequest, browser: Any, console_server: Server
            ) -> Iterator[Console]:
    """The console signed in, once on a laptop's screen and once on a phone's."""
    name, viewport = request.param
    with console_page(browser, console_server, name, viewport) as c:
        yield c
