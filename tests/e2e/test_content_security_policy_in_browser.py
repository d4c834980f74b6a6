"""With the default Content-Security-Policy enforced (dashboard.web.security.STRICT_POLICY), Chromium still
draws every chart, the WebGL power chart (plotly's regl) included, and the API docs and admin pages load,
without one violation; while a script or handler injected into a page is refused."""

from __future__ import annotations

from typing import Any

import pytest

from dashboard.web.security import STRICT_POLICY
from tests.e2e.browser import (
    browser_page,
    follow,
    log_in,
    open_logged_in,
    session_cookie,
    wait_for_charts,
    wait_until,
)
from tests.e2e.data import stream_batches
from tests.factories import member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

# Collects the page's CSP violations (the browser also logs each as a console error).
RECORD_VIOLATIONS = """window.__violations = [];
document.addEventListener('securitypolicyviolation', e => window.__violations.push(e.violatedDirective + ' ' + e.blockedURI));"""


def visit(page: Any, url: str) -> None:
    response = page.goto(url)
    assert response.headers["content-security-policy"] == STRICT_POLICY, url


def assert_clean(page: Any) -> None:
    assert page.evaluate("window.__violations") == [], (page.url, page.evaluate("window.__violations"), page.console_errors)
    assert page.console_errors == [], page.url


def test_the_pages_draw_with_the_policy_enforced_and_an_injected_script_is_refused(live_server, django_user_model):
    node = register("node-a", "vision")
    stream_batches(node, "bert-a", range(6), gpus=2)
    stream_batches(node, "bert-b", range(4), gpus=2)
    member("ana", "vision")
    django_user_model.objects.create_superuser("root", password="pw-root")
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        page.add_init_script(RECORD_VIOLATIONS)
        open_logged_in(page, live_server.url, cookie)
        follow(page, "text=bert-a")
        assert "chart-power" in wait_for_charts(page)
        assert page.evaluate("document.getElementById('chart-power').data[0].type") == "scattergl"
        # Drawn by WebGL: plotly.js writes this note in its place when its WebGL renderer cannot start.
        assert page.locator("#chart-power canvas").count() > 0
        assert "WebGL is not supported" not in page.inner_text("#chart-power")
        assert_clean(page)
        follow(page, "#gpus-table >> text=gpu0")
        wait_for_charts(page)
        assert_clean(page)
        visit(page, f"{live_server.url}/compare/?runs=bert-a,bert-b")
        assert wait_for_charts(page) == ["chart-power", "chart-energy", "chart-scatter"]
        assert_clean(page)

        visit(page, f"{live_server.url}/api/docs")
        page.wait_for_selector("#swagger-ui .opblock")
        assert_clean(page)

        # An inline script and an inline handler stay unrun: what an injected payload would need.
        page.evaluate("""() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';
            document.body.appendChild(s); }""")
        page.evaluate("document.body.insertAdjacentHTML('beforeend', `<img src=x onerror='window.__ran = 2'>`)")
        wait_until(page, "() => window.__violations.length >= 2")
        assert page.evaluate("window.__ran") is None
        injected = page.evaluate("window.__violations")
        assert injected and all(v.startswith("script-src") for v in injected), injected
        page.console_errors.clear()

        page.context.clear_cookies()
        log_in(page, live_server.url, "root", "pw-root")
        visit(page, f"{live_server.url}/admin/")
        page.wait_for_selector("#content-main")
        assert page.evaluate("window.__violations") == []  # (the admin asks for a /favicon.ico there is not)
