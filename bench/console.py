"""How fast the operator console opens a device with a month of data.

    python bench/console.py                    # builds a store: 12 people x 30 days (~4 min)
    python bench/console.py --store DIR        # or uses yours (a published model in it)
    python bench/console.py --repeat 9

Starts ``parkloop serve`` over the store and measures, for the device with the most fixes:

- the device route (``GET /v1/console/devices/ID``): its first call on a running server
  (facts computed from raw; the server's own first request, which pays one-time costs, goes
  to another device) and repeated calls (cached);
- the page in Debian's Chromium (Playwright), each time in a fresh browser context (no
  browser cache): from navigation to the device view drawn (the router's
  ``aria-busy=false``, after the map's layers are added), on a laptop and a phone screen,
  with the server's cache cold (the device's first view) and warm;
- the devices list (``#/device``) likewise.

The target is under a second for a device with a month of data.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
ADMIN = "bench-admin-token-0123456789"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-sync",
        "--disable-background-networking", "--disable-component-update", "--disable-quic"]


def cli(*args: str | Path, store: Path) -> None:
    subprocess.run([sys.executable, "-m", "parkloop", *map(str, args), "--store", str(store)],
                   check=True, capture_output=True)


def make_store(store: Path) -> None:
    print(f"building {store}: 12 people x 30 days, facts, a trained champion ...", flush=True)
    start = time.perf_counter()
    cli("simulate", "--devices", "12", "--days", "30", "--seed", "0", "--label-share", "0.5",
        store=store)
    cli("facts", "build", store=store)
    cli("model", "train", "--publish", store=store)
    print(f"  built in {time.perf_counter() - start:.0f} s")


class Serving:
    def __init__(self, store: Path, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "parkloop", "serve", "--store", str(store), "--port",
             str(port), "--loop-interval", "0"], stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env={**os.environ, "PARKLOOP_ADMIN_TOKEN": ADMIN})
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                r = httpx.get(self.url + "/readyz", timeout=2).json()
                if r["ready"] and r["raw_watermark"] == r["raw_committed"]:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise SystemExit("the server did not get ready")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def route_ms(url: str) -> float:
    start = time.perf_counter()
    r = httpx.get(url, headers={"Authorization": f"Bearer {ADMIN}"}, timeout=60)
    r.raise_for_status()
    return (time.perf_counter() - start) * 1000


def page_ms(browser: Any, url: str, viewport: dict[str, int]) -> float:
    """Navigation start to the view drawn, in a fresh tab holding the token."""
    context = browser.new_context(viewport=viewport)
    context.add_init_script(f"sessionStorage.setItem('parkloop.admin-token', '{ADMIN}')")
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("section.view[aria-busy=false]", timeout=60_000)
    took = float(page.evaluate("performance.now()"))
    context.close()
    return took


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--store", type=Path, default=ROOT / "bench" / "results" / "console-store")
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--port", type=int, default=8791)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    a = ap.parse_args()
    if not (a.store / "registry").exists():
        make_store(a.store)

    from playwright.sync_api import sync_playwright

    from parkloop.store import Store

    with Store.open(a.store, read_only=True) as s:
        (device, n, days), (other, _, _) = s.con.execute(
            "SELECT device_id, count(*), (max(t_ms) - min(t_ms)) / 86400000 FROM raw_fix "
            "GROUP BY 1 ORDER BY 2 DESC LIMIT 2").fetchall()
    print(f"device {device}: {n:,} fixes over {days:.1f} days")
    laptop, phone = {"width": 1366, "height": 768}, {"width": 390, "height": 844}
    figures: dict[tuple[str, str], list[float]] = {}

    def note(what: str, cache: str, ms: float) -> None:
        figures.setdefault((what, cache), []).append(ms)

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=a.chromium, args=ARGS)
        for _ in range(a.repeat):
            server = Serving(a.store, a.port)  # a fresh server: nothing cached
            try:
                api = f"{server.url}/v1/console/devices/{device}"
                view = f"{server.url}/console/#/device/{device}"
                # the server's first request of its life pays one-time costs: open another
                # device first, so that "cold" is this device's first view on a running server
                page_ms(browser, f"{server.url}/console/#/device/{other}", laptop)
                note("device view, laptop", "cold", page_ms(browser, view, laptop))
                note("device route", "warm", route_ms(api))
                note("device view, laptop", "warm", page_ms(browser, view, laptop))
                note("device view, phone", "warm", page_ms(browser, view, phone))
                note("devices list, laptop", "-", page_ms(browser, f"{server.url}/console/#/device",
                                                         laptop))
            finally:
                server.stop()
            server = Serving(a.store, a.port)
            try:
                route_ms(f"{server.url}/v1/console/devices/{other}")
                note("device route", "cold", route_ms(api))
            finally:
                server.stop()
        browser.close()
    rows = [(what, cache, statistics.median(xs), max(xs))
            for (what, cache), xs in sorted(figures.items())]
    print(f"\n| measure ({a.repeat} runs) | server cache | median ms | worst ms |")
    print("|---|---|---:|---:|")
    for what, cache, med, worst in rows:
        print(f"| {what} | {cache} | {med:.0f} | {worst:.0f} |")


if __name__ == "__main__":
    main()
