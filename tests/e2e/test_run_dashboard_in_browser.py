"""A user logs in through the form, sees their runs, opens a run and one of its GPUs, and every Plotly chart
is drawn (by plotly.js served from static files) without a console error."""

from __future__ import annotations

import pytest

from tests.e2e.browser import (
    browser_page,
    follow,
    log_in,
    open_logged_in,
    session_cookie,
    shot,
    trace_count,
    wait_for_charts,
    wait_until,
)
from tests.e2e.data import stream_batches
from tests.factories import member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

RUN_CHARTS = ["chart-power", "chart-energy-per-gpu", "chart-nodes", "chart-cumulative"]
GPU_CHARTS = ["chart-power", "chart-energy", "chart-clock", "chart-util", "chart-temp"]


@pytest.fixture
def streamed_runs():
    stream_batches(register("node-a", "vision"), "bert-large", range(30), gpus=2)
    stream_batches(register("node-b", "vision"), "vit-base", range(5), gpus=3)
    stream_batches(register("node-x", "secret"), "not-yours", range(2), gpus=1)
    member("ana", "vision")


def test_login_open_run_and_see_its_charts(live_server, streamed_runs):
    with browser_page() as page:
        log_in(page, live_server.url, "ana", "pw-ana")
        names = page.locator("#runs-table tbody a[href^='/runs/']").all_text_contents()
        assert sorted(names) == ["bert-large", "vit-base"]  # another project's run is not listed
        row = page.inner_text("#runs-table tbody tr:has-text('bert-large')")
        assert "vision" in row and "running" in row and "Wh" in row

        follow(page, "text=bert-large")
        assert wait_for_charts(page) == RUN_CHARTS
        assert trace_count(page, "chart-power") == 2  # one power trace per GPU
        assert page.evaluate("document.getElementById('chart-power').data.map(t => t.name)") == ["node-a/gpu0", "node-a/gpu1"]
        assert "Wh" in page.inner_text("#card-energy")  # 25 Wh: printed in the unit that fits
        assert "3,000 samples" in page.inner_text("#card-samples")
        shot(page, "run.png")

        follow(page, "#gpus-table >> text=gpu1")
        assert wait_for_charts(page) == GPU_CHARTS
        assert "gpu1" in page.inner_text("h1")
        assert "1,500" in page.inner_text("#card-samples")
        shot(page, "gpu.png")

        follow(page, ".crumbs >> text=Runs")
        follow(page, "text=vit-base")
        wait_for_charts(page)
        assert trace_count(page, "chart-power") == 3
        assert page.console_errors == []


def test_an_anonymous_visitor_lands_on_the_login_form_and_a_wrong_password_keeps_them_there(live_server):
    member("ana", "vision")
    with browser_page() as page:
        page.goto(live_server.url + "/runs/")
        assert "/accounts/login/" in page.url
        page.fill("input[name=username]", "ana")
        page.fill("input[name=password]", "not-the-password")
        page.click("button[type=submit]")
        page.wait_for_selector("p.error")
        assert "didn't match" in page.inner_text("p.error")
        assert "/accounts/login/" in page.url and page.is_visible("input[name=password]")


SPILLED = """() => [...document.querySelectorAll('.js-plotly-plot')]
    .filter(gd => gd.querySelector('.main-svg').getBoundingClientRect().bottom > gd.getBoundingClientRect().bottom + 1)
    .map(gd => gd.id)"""


def test_charts_stay_inside_their_boxes_when_the_window_is_resized(live_server):
    stream_batches(register("node-a", "vision"), "short", range(3), gpus=1)
    member("ana", "vision")
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie)
        follow(page, "text=short")
        wait_for_charts(page)
        assert page.evaluate(SPILLED) == []
        widths = page.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(gd => gd._fullLayout.width)")
        page.set_viewport_size({"width": 1200, "height": 900})
        wait_until(page, """(widths) => [...document.querySelectorAll('.js-plotly-plot')]
            .every((gd, i) => gd._fullLayout.width !== widths[i])""", widths)
        assert page.evaluate(SPILLED) == []
