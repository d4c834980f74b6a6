"""Headless Chromium through Playwright (Debian's chromium: Playwright cannot download its own here)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.conftest import need_service

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-quic", "--no-first-run"]
# What headless Chromium itself logs when WebGL charts are read back in software: no page's doing.
BROWSER_NOISE = ("GPU stall due to ReadPixels",)
# Where tests leave the screenshots they take along the way (not the docs' ones: see test_screenshots_in_browser).
SHOTS = Path(os.environ.get("WATTWISE_SCREENSHOTS", "/tmp/wattwise-screenshots"))

# The ids of the charts a page drew from its <script data-plot> elements that have no SVG yet.
_UNDRAWN = """() => {
    const ids = [...document.querySelectorAll('script[type="application/json"][data-plot]')].map(s => s.dataset.plot);
    return {ids, undrawn: ids.filter(id => !document.querySelector('#' + CSS.escape(id) + ' .main-svg'))};
}"""
# A date x axis's visible range, in epoch milliseconds.
X_RANGE_MS = """(id) => { const xa = document.getElementById(id)._fullLayout.xaxis; return xa.range.map(xa.r2l); }"""


@contextmanager
def browser_page() -> Iterator[Any]:
    need_service("Chromium at /usr/bin/chromium", shutil.which(CHROMIUM) is not None)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.console_errors = errors
        messages: list[str] = []  # everything the page logs, of any kind, but the browser's own noise
        page.on("console", lambda m: None if any(n in m.text for n in BROWSER_NOISE) else messages.append(
            f"{m.type} on {page.url}: {m.text}"))
        page.on("pageerror", lambda e: messages.append(f"uncaught on {page.url}: {e}"))
        page.console_messages = messages
        try:
            yield page
        finally:
            browser.close()


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the login form, as a person does: the runs list asks for it first."""
    page.goto(base_url + "/runs/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button[type=submit]")
    page.wait_for_url("**/runs/")


def session_cookie(base_url: str, username: str) -> dict[str, str]:
    """A logged-in session for ``username``, as a cookie for the browser: for tests about something other than
    the login form, which ``log_in`` goes through. Make it before opening the browser (ORM calls made while
    Playwright's loop runs get connections of their own)."""
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.get(username=username))
    return {"name": settings.SESSION_COOKIE_NAME, "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
            "url": base_url}


def open_logged_in(page: Any, base_url: str, cookie: dict[str, str], path: str = "/runs/") -> None:
    page.context.add_cookies([cookie])
    page.goto(base_url + path)


def follow(page: Any, selector: str) -> None:
    """Click something that opens another page, and return once that page's DOM is there: a check made straight
    after a bare click can run on the page being left (its charts all drawn) and then read the new one undrawn."""
    with page.expect_navigation(wait_until="domcontentloaded"):
        page.click(selector)


def wait_until(page: Any, condition: str, arg: Any = None, timeout_ms: float = 15_000) -> None:
    """Wait until the JavaScript function ``condition(arg)`` returns true in the page, checked every frame.

    Playwright's own ``wait_for_function`` compiles its predicate with ``new Function`` inside the page, which
    the app's Content-Security-Policy forbids ('unsafe-eval'); ``evaluate`` is compiled by the browser's
    debugger protocol instead, which the policy does not cover, so the loop runs there."""
    page.evaluate(f"""([arg, timeoutMs]) => new Promise((resolve, reject) => {{
        const condition = {condition}, deadline = performance.now() + timeoutMs;
        const check = () => {{
            if (condition(arg)) resolve();
            else if (performance.now() > deadline) reject(new Error("timed out waiting for " + {condition!r}));
            else requestAnimationFrame(check);
        }};
        check();
    }})""", [arg, timeout_ms])


def wait_for_charts(page: Any, timeout_ms: float = 15_000) -> list[str]:
    """Wait until every chart the page shipped as JSON has been drawn; return their ids, in page order."""
    wait_until(page, f"() => ({_UNDRAWN})().undrawn.length === 0", timeout_ms=timeout_ms)
    ids: list[str] = page.evaluate(_UNDRAWN)["ids"]
    return ids


def trace_count(page: Any, div_id: str) -> int:
    count: int = page.evaluate("(id) => document.getElementById(id).data.length", div_id)
    return count


def x_range_ms(page: Any, div_id: str) -> tuple[float, float]:
    low, high = page.evaluate(X_RANGE_MS, div_id)
    return low, high


# Plotly's responsive charts redraw on window resize, and a full-page screenshot resizes the window: unhook them
# so the picture shows the page as it was drawn (test_run_dashboard_in_browser has the resize bug this avoids).
_UNHOOK_RESIZE = """() => document.querySelectorAll('.js-plotly-plot').forEach(gd => {
    if (gd._responsiveChartHandler) window.removeEventListener('resize', gd._responsiveChartHandler);
})"""


def shot(page: Any, name: str, folder: Path = SHOTS) -> Path:
    """A full-page PNG of the page as drawn."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    page.evaluate(_UNHOOK_RESIZE)
    page.screenshot(path=str(path), full_page=True)
    return path
