"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real
``parkloop serve`` over a store where the loop has retrained and published.

Chromium comes from the system (``apt-get install chromium``; `.ci/run` installs it), never
downloaded by Playwright. Without it these tests skip, unless ``PARKLOOP_REQUIRE_BROWSER`` is
set (as in CI), where they fail. Screenshots go to ``test-artifacts/console/`` (or
``$PARKLOOP_ARTIFACTS/console/``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
import pytest

from parkloop.loop.run import run_pass
from parkloop.store import Store
from tests.serve.conftest import ADMIN_TOKEN, Server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("PARKLOOP_ARTIFACTS", ROOT / "test-artifacts")) / "console"
LAPTOP = {"width": 1366, "height": 768}
PHONE = {"width": 390, "height": 844}
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
    # this machine has no internet: without these, Chromium's own background connections
    # are refused many at a time
    "--disable-background-networking", "--disable-component-update", "--disable-quic",
]


def chromium() -> str:
    path = os.environ.get("PARKLOOP_CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    if path is None:
        message = "no Chromium here: `apt-get install chromium` (or set PARKLOOP_CHROMIUM)"
        if os.environ.get("PARKLOOP_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Chromium for one test module: Playwright's sync API keeps an event loop running in
    the main thread while it is open, which later tests calling asyncio.run() cannot share."""
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield b
        b.close()


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
class Console:
    """One browser page signed in to the console, and what it asked the network for."""

    page: Any
    server: Server
    name: str
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, hash_: str) -> None:
        self.page.goto(f"{self.server.url}/console/{hash_}")
        self.page.wait_for_selector("section.view[aria-busy=false]")

    def api(self, path: str, **params: Any) -> Any:
        r = httpx.get(self.server.url + path, params=params, headers=self.server.admin,
                      timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def shot(self, view: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{view}-{self.name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits(self) -> bool:
        """No sideways scrolling of the page (tables scroll inside their own box)."""
        return bool(self.page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth + 1"))


@contextmanager
def console_page(browser: Any, server: Server, name: str, viewport: dict[str, int]
                 ) -> Iterator[Console]:
    """A fresh browser context signed in to the console; on leaving, no request may have
    gone elsewhere than the server and the page may have logged no error."""
    context = browser.new_context(viewport=viewport, device_scale_factor=1,
                                  is_mobile=viewport is PHONE, has_touch=viewport is PHONE)
    page = context.new_page()
    c = Console(page, server, name)
    local = urlparse(server.url).netloc

    def guard(route: Any) -> None:
        url = route.request.url
        if urlparse(url).netloc == local or url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            c.foreign.append(url)
            route.abort()

    page.route("**/*", guard)
    page.on("pageerror", lambda exc: c.errors.append(str(exc)))
    page.on("console", lambda m: c.errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{server.url}/console/")
    page.fill("#token", ADMIN_TOKEN)
    page.click("#signin button[type=submit]")
    page.wait_for_selector("section.view[aria-busy=false]")
    try:
        yield c
    finally:
        context.close()
    assert c.foreign == [], f"the page asked for outside addresses: {c.foreign}"
    assert c.errors == [], f"the page logged errors: {c.errors}"


@pytest.fixture(scope="module", params=[("laptop", LAPTOP), ("phone", PHONE)],
                ids=["laptop", "phone"])
def console(request: pytest.FixtureRequest, browser: Any, console_server: Server
            ) -> Iterator[Console]:
    """The console signed in, once on a laptop's screen and once on a phone's."""
    name, viewport = request.param
    with console_page(browser, console_server, name, viewport) as c:
        yield c
