"""A running run's page updates in place while batches arrive: the cards and charts change, the page does not
reload, the user's zoom and hidden traces are kept, and it stops when the run finishes. The page polls every second here
(WATTWISE_LIVE_POLL_S, 5 s by default), so the test takes a few seconds, not tens."""

from __future__ import annotations

import pytest

from tests.e2e.browser import (
    browser_page,
    follow,
    open_logged_in,
    session_cookie,
    trace_count,
    wait_for_charts,
    wait_until,
)
from tests.e2e.data import close_streams, release_connections, stream_batches
from tests.factories import member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

READ_LIVE = """() => {
    const gd = document.getElementById('chart-power'), live = document.getElementById('live');
    const x = gd._fullData[0].x;
    return {updates: parseInt(live.dataset.updates || '0', 10), samples: document.getElementById('card-samples').textContent,
            stamp: document.getElementById('live-updated').textContent, marker: window.__marker || null,
            range: gd.layout.xaxis.range, autorange: gd.layout.xaxis.autorange, last_x: x[x.length - 1],
            visible: gd._fullData.map(t => t.visible)};
}"""


@pytest.fixture
def running_run(settings):
    settings.WATTWISE_LIVE_POLL_S = 1.0
    node = register("node-a", "vision")
    stream_batches(node, "llama-live", range(20), gpus=2)  # 100 s of samples so far, and no close_run
    member("ana", "vision")
    return node


def test_a_running_runs_page_updates_in_place_keeps_the_zoom_and_hidden_traces_and_stops_when_it_ends(live_server, running_run):
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie)
        follow(page, "text=llama-live")
        wait_for_charts(page)
        assert page.get_attribute("#live", "data-poll-s") == "1.0"
        assert "Live: updates every" in page.inner_text("#live")
        assert trace_count(page, "chart-power") == 2

        # The user zooms into the middle of the power chart and hides gpu1; the page is marked to catch a reload.
        page.evaluate("""() => {
            window.__marker = 1;
            const gd = document.getElementById('chart-power'), xa = gd._fullLayout.xaxis;
            const [low, high] = xa.range.map(xa.r2l), third = (high - low) / 3;
            return Plotly.relayout(gd, {'xaxis.range': [xa.l2r(low + third), xa.l2r(high - third)]});
        }""")
        page.locator("#chart-power .legend .traces .legendtoggle").nth(1).click()  # a click on gpu1's legend entry
        wait_until(page, "() => document.getElementById('chart-power')._fullData[1].visible === 'legendonly'")
        before = page.evaluate(READ_LIVE)
        assert before["autorange"] is False and before["visible"] == [True, "legendonly"]

        stream_batches(running_run, "llama-live", range(20, 30), gpus=2)  # the agents send 50 s more
        release_connections()

        # Polls may land while the batches are still arriving: wait for the one that has them all.
        wait_until(page, "() => document.getElementById('card-samples').textContent.includes('3,000 samples')")
        after = page.evaluate(READ_LIVE)
        assert "2,000 samples" in before["samples"] and after["updates"] > before["updates"]
        assert after["stamp"].startswith("Updated ")
        assert after["marker"] == 1, "the page reloaded"
        assert after["last_x"] > before["last_x"], "the power chart was not redrawn with the new samples"
        assert after["range"] == before["range"] and after["autorange"] is False  # the zoom is kept
        assert after["visible"] == [True, "legendonly"], after  # and so is the hidden trace

        # The agents finish: the page says so and stops polling.
        close_streams(running_run, "llama-live", range(30), gpus=2)
        release_connections()
        page.wait_for_selector("#live.stopped", timeout=15_000)
        assert "The run has finished" in page.inner_text("#live-text")
        assert page.evaluate("window.__marker") == 1
        assert page.console_errors == []
