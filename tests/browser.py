"""Chromium for the browser tests (the driver's page, tests/app; the console, tests/console): a
plugin of tests/conftest.py with the ``browser`` fixture, and :class:`Tab`, one page against a
real ``parkloop serve`` that must ask nothing of the outside world and log no error.

Chromium comes from the system (``apt-get install chromium``; `.ci/run` installs it), never
downloaded by Playwright. Without it these tests skip, unless ``PARKLOOP_REQUIRE_BROWSER`` is
set (as in CI), where they fail. Screenshots go to ``test-artifacts/SUITE/`` (or
``$PARKLOOP_ARTIFACTS/SUITE/``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlparse

import pytest

if TYPE_CHECKING:
    from tests.serve.conftest import Server

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("PARKLOOP_ARTIFACTS", ROOT / "test-artifacts"))
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


@dataclass
class Tab:
    """One browser page on ``server``, and what it asked of the network: a request that
    leaves the server (other than ``data:`` and ``blob:``) is refused and noted in
    ``foreign``, an error the page raises or logs in ``errors``; :meth:`check` asserts there
    were none."""

    SUITE: ClassVar[str] = "browser"
    """the folder of ``test-artifacts`` its screenshots go to"""
    page: Any
    server: Server
    foreign: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))

    def at_home(self, url: str) -> bool:
        """Whether ``url`` is the server's (or needs no network); if not, it is noted."""
        if urlparse(url).netloc == urlparse(self.server.url).netloc or \
                url.startswith(("data:", "blob:")):
            return True
        self.foreign.append(url)
        return False

    def shot(self, name: str) -> Path:
        folder = ARTIFACTS / self.SUITE
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def fits(self) -> bool:
        """No sideways scrolling of the page (tables scroll inside their own box)."""
        return bool(self.page.evaluate(
            "document.documentElement.scrollWidth <= window.innerWidth + 1"))

    def check(self) -> None:
        assert self.foreign == [], f"the page asked for outside addresses: {self.foreign}"
        assert self.errors == [], f"the page logged errors: {self.errors}"
