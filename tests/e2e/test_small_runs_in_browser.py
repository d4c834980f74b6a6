"""A run of a few seconds, as a new user's first try is: every figure on its pages prints in a unit that
fits (mg, mWh, cm, "< 0.01 USD"), and its time charts tick in whole seconds, not fractions of a ms."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connections

from dashboard.telemetry.models import Run
from planner.carbon.accounting import store_run_carbon
from tests.e2e.browser import browser_page, follow, open_logged_in, session_cookie, shot, wait_for_charts
from tests.e2e.data import replay
from tests.factories import member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

TICKS = "(id) => [...document.querySelectorAll('#' + id + ' .xtick text')].map(t => t.textContent)"
FRACTION_OF_A_SECOND = re.compile(r"\d:\d\d\.\d")
# What small quantities used to print as: exponents, rounded-away zeros.
UNREADABLE = re.compile(r"\de-\d|0\.0000 t|(?<![\d.,])0 km|0\.00 USD|\b0\.000 kWh")


@pytest.fixture
def tiny_run():
    node = register("gpu-laptop", "first-try")
    start = (datetime.now(UTC) - timedelta(hours=2)).replace(minute=29, second=58, microsecond=0)
    replay(node, "hello-gpu", start=start, duration_s=4, gpus=1, rate_hz=5, window_s=2, zone="DE")
    run = Run.objects.get(name="hello-gpu")
    store_run_carbon(run)
    member("ana", "first-try")
    cookie_run = run.pk
    connections.close_all()
    return cookie_run


def test_a_run_of_a_few_seconds_reads_in_small_units_with_readable_time_axes(live_server, tiny_run):
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie, f"/runs/{tiny_run}/")
        charts = wait_for_charts(page)
        assert "chart-power" in charts and "chart-carbon-hourly" in charts
        for chart in ("chart-power", "chart-cumulative", "chart-carbon-hourly"):
            ticks = page.evaluate(TICKS, chart)
            assert ticks and not [t for t in ticks if FRACTION_OF_A_SECOND.search(t)], (chart, ticks)
        text = page.inner_text("main")
        assert not UNREADABLE.search(text), UNREADABLE.search(text)
        assert "mWh" in page.inner_text("#card-energy")
        offset = page.inner_text("#card-offset")
        assert "< 0.01 USD" in offset and re.search(r"\d+(\.\d+)? mg of", offset)
        assert re.search(r"\d (cm|mm|m)\b", page.inner_text("#card-equivalent"))
        shot(page, "small-run.png")

        follow(page, "#gpus-table >> text=gpu0")
        for chart in wait_for_charts(page):
            ticks = page.evaluate(TICKS, chart)
            assert not [t for t in ticks if FRACTION_OF_A_SECOND.search(t)], (chart, ticks)

        page.goto(live_server.url + "/carbon/")
        follow(page, "#carbon-projects >> text=offsets")
        cards = page.inner_text(".cards")
        assert "< 0.01 USD" in cards and "mg" in cards and not UNREADABLE.search(cards)
        assert page.console_errors == []
