"""A user logs in, opens a run, and sees its Plotly charts drawn by plotly.js served from static files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from dashboard import ingest
from tests.e2e.browser import browser_page, log_in
from tests.factories import member, register, simple_batch

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path(os.environ.get("WATTWISE_SCREENSHOTS", "/tmp/wattwise-screenshots"))


@pytest.fixture
def streamed_run():
    node = register("node-a", "vision")
    for seq in range(30):
        for gpu in range(2):
            ingest.ingest_batch(simple_batch(node, seq=seq, run="bert-large", uuid=f"GPU-{gpu}",
                                             stream=f"s{gpu}", index=gpu, samples=50, step_mj=30_000 + gpu * 5_000))
    member("ana", "vision")


def test_login_open_run_and_see_its_charts(live_server, streamed_run):
    SHOTS.mkdir(parents=True, exist_ok=True)
    with browser_page() as page:
        log_in(page, live_server.url, "ana", "pw-ana")
        page.click("text=bert-large")
        page.wait_for_selector("#chart-cumulative .main-svg")
        assert page.locator(".js-plotly-plot").count() == 4
        assert page.evaluate("document.getElementById('chart-power').data.length") == 2
        assert "kWh" in page.inner_text("#card-energy")
        page.screenshot(path=str(SHOTS / "run.png"), full_page=True)

        page.click("#gpus-table >> text=gpu1")
        page.wait_for_selector("#chart-temp .main-svg")
        assert page.locator(".js-plotly-plot").count() == 5
        page.screenshot(path=str(SHOTS / "gpu.png"), full_page=True)
        assert page.console_errors == []


def test_anonymous_visitor_lands_on_the_login_form(live_server):
    with browser_page() as page:
        page.goto(live_server.url + "/runs/")
        assert "/accounts/login/" in page.url
        assert page.is_visible("input[name=password]")
