"""The run page's time-range picker: a relative range and a custom from/to land in the URL (so the view can be
shared) and narrow the charts to them; an inverted custom range is refused with a page that says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import (
    browser_page,
    follow,
    open_logged_in,
    session_cookie,
    shot,
    wait_for_charts,
    x_range_ms,
)
from tests.e2e.data import replay
from tests.factories import member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

START = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
MINUTE_MS = 60_000


@pytest.fixture
def hour_long_run():
    """A finished one-hour run of two GPUs, sampled every two seconds."""
    replay(register("node-a", "vision"), "gpt-neo", start=START, duration_s=3600, gpus=2, rate_hz=0.5)
    member("ana", "vision")


def open_run(page, base_url: str, cookie: dict[str, str]) -> None:
    open_logged_in(page, base_url, cookie)
    follow(page, "text=gpt-neo")
    wait_for_charts(page)


def test_the_range_picked_lands_in_the_url_and_narrows_the_charts_and_an_inverted_one_is_refused(live_server, hour_long_run):
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_run(page, live_server.url, cookie)
        low, high = x_range_ms(page, "chart-power")
        assert 55 * MINUTE_MS <= high - low <= 62 * MINUTE_MS  # the whole run
        assert page.get_attribute("a.range.current", "data-range") == "all"

        page.click("a.range[data-range='15m']")
        page.wait_for_url("**/?range=15m")
        wait_for_charts(page)
        low, high = x_range_ms(page, "chart-power")
        assert 13 * MINUTE_MS <= high - low <= 15.5 * MINUTE_MS
        # A finished run's "last 15 min" are its own last 15 minutes, not the 15 minutes before now.
        assert abs(high - (START + timedelta(hours=1)).timestamp() * 1000) <= 2 * MINUTE_MS
        assert page.get_attribute("a.range.current", "data-range") == "15m"
        assert "Last 15 min" in page.inner_text("#card-range-energy")
        # Reloading the shared link shows the same range.
        page.reload()
        wait_for_charts(page)
        assert page.get_attribute("a.range.current", "data-range") == "15m"

        # A custom range, typed into the form (UTC), lands in the URL too.
        page.fill("#range-from", "2026-03-02T08:20:00")
        page.fill("#range-to", "2026-03-02T08:30:00")
        page.click("#range-picker button[type=submit]")
        page.wait_for_url("**/?from=*")
        query = parse_qs(urlparse(page.url).query)
        assert query["from"][0].startswith("2026-03-02T08:20") and query["to"][0].startswith("2026-03-02T08:30")
        wait_for_charts(page)
        low, high = x_range_ms(page, "chart-power")
        assert (START + timedelta(minutes=20)).timestamp() * 1000 - MINUTE_MS <= low
        assert high <= (START + timedelta(minutes=30)).timestamp() * 1000 + MINUTE_MS
        assert high - low >= 8 * MINUTE_MS
        assert "2026-03-02T08:20:00 → 2026-03-02T08:30:00 UTC" in page.inner_text("#card-range-energy")
        assert page.input_value("#range-from").startswith("2026-03-02T08:20")
        shot(page, "run-custom-range.png")
        assert page.console_errors == []

        # An inverted one is refused with a 400 page that says why, and a way back.
        page.fill("#range-from", "2026-03-02T08:40:00")
        page.fill("#range-to", "2026-03-02T08:10:00")
        with page.expect_navigation() as navigation:
            page.click("#range-picker button[type=submit]")
        assert navigation.value.status == 400
        message = page.inner_text("#bad-request")
        assert "'from' (2026-03-02T08:40:00) must be before 'to' (2026-03-02T08:10:00)" in message
        follow(page, "text=Back")
        wait_for_charts(page)
        assert "from=" not in page.url
        assert page.console_errors == ["Failed to load resource: the server responded with a status of 400 (Bad Request)"]
