"""A user ticks three runs in the runs list, presses "Compare selected", and gets the compare page: power and
cumulative energy of each run on one chart, the totals side by side with a "differences only" switch kept
in the address, and the time–energy scatter."""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import pytest

from tests.e2e.browser import (
    browser_page,
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

RUNS = {"bert-a": 20, "bert-b": 30, "bert-c": 10}  # batches of 5 s: 100, 150 and 50 s of two GPUs
VISIBLE_ROWS = "() => [...document.querySelectorAll('#compare-table tbody tr')].filter(r => r.offsetParent).length"


@pytest.fixture
def three_runs():
    node = register("node-a", "vision")
    for name, batches in RUNS.items():
        stream_batches(node, name, range(batches), gpus=2)
    stream_batches(node, "not-ticked", range(2), gpus=1)
    member("ana", "vision")


def test_ticking_three_runs_and_comparing_them_shows_charts_totals_and_the_scatter(live_server, three_runs):
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie)
        assert page.is_disabled("#compare-button")
        for name in RUNS:
            page.locator("#runs-table tbody tr", has_text=name).locator("input[type=checkbox]").check()
        assert page.inner_text("#compare-count") == "3 ticked"
        page.click("#compare-button")
        page.wait_for_url("**/compare/?runs=*")
        runs = parse_qs(urlparse(page.url).query)["runs"]
        # One comma-separated parameter; a name may carry its project (PROJECT/NAME) where that is needed.
        assert len(runs) == 1 and sorted(run.split("/")[-1] for run in runs[0].split(",")) == sorted(RUNS)

        assert wait_for_charts(page) == ["chart-power", "chart-energy", "chart-scatter"]
        assert trace_count(page, "chart-power") == 3 and trace_count(page, "chart-energy") == 3
        scatter_points = page.evaluate("document.getElementById('chart-scatter')._fullData"
                                       ".reduce((n, t) => n + (t.visible === true ? t._length || 0 : 0), 0)")
        assert scatter_points >= 3
        assert "Compare 3 runs" in page.inner_text("h1")
        headers = page.locator("#compare-table thead th[data-run]").all_inner_texts()
        assert len(headers) == 3 and all(any(name in h for h in headers) for name in RUNS)
        assert "baseline" in headers[0]

        # Differences only: the identical rows (same project, same GPU count, ...) hide, and the address says so.
        total = page.locator("#compare-table tbody tr").count()
        identical = page.locator("#compare-table tbody tr.identical").count()
        assert identical >= 1 and page.evaluate(VISIBLE_ROWS) == total
        assert f"({identical} identical row" in page.inner_text("#identical-count")
        page.check("#diff-only")
        wait_until(page, f"() => ({VISIBLE_ROWS})() === {total - identical}")
        assert "diff=1" in page.url and "diff=1" in page.input_value("#share-link")
        assert page.is_visible("#compare-table tbody tr[data-row='energy']") or total - identical > 0
        shot(page, "compare.png")
        page.uncheck("#diff-only")
        wait_until(page, f"() => ({VISIBLE_ROWS})() === {total}")
        assert "diff=1" not in page.url

        # The shared address opens the same view.
        page.goto(page.url + "&diff=1")
        wait_for_charts(page)
        assert page.is_checked("#diff-only") and page.evaluate(VISIBLE_ROWS) == total - identical
        assert page.console_errors == []


# The browser's boxes of each run's label and marker in the scatter, and of its plot area.
SCATTER_BOXES = """() => {
    const gd = document.getElementById('chart-scatter');
    const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.right, r.top, r.bottom]; };
    const labels = [...gd.querySelectorAll('g.annotation-text-g, g.textpoint')].map(box);
    const points = [...gd.querySelectorAll('.scatterlayer .point')].map(box);
    return {labels, points, plot: box(gd.querySelector('.nsewdrag'))};
}"""


def test_the_scatter_of_similar_runs_fills_its_axes_and_no_two_labels_overlap(live_server):
    node = register("node-a", "vision")
    # Two runs alike in time and energy, and a third a little longer: one cluster of points.
    for name, batches in (("twin-a", 20), ("twin-b", 20), ("longer", 22)):
        stream_batches(node, name, range(batches), gpus=2)
    member("ana", "vision")
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie, "/compare/?runs=twin-a,twin-b,longer")
        wait_for_charts(page)
        boxes = page.evaluate(SCATTER_BOXES)
        labels, points, (left, right, top, bottom) = boxes["labels"], boxes["points"], boxes["plot"]
        assert len(labels) == 3 and len(points) == 3
        for i, a in enumerate(labels):
            for b in labels[i + 1:]:
                assert not (a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]), f"labels overlap: {a} {b}"
        for x0, x1, y0, y1 in points:
            assert left <= x0 and x1 <= right and top <= y0 and y1 <= bottom
        # Fitted to the runs: the cluster spreads over the plot instead of sitting in a corner near 0.
        x_range, y_range = page.evaluate(
            "['xaxis', 'yaxis'].map(a => document.getElementById('chart-scatter')._fullLayout[a].range)")
        assert x_range[0] > 0 and y_range[0] > 0
        centres = [(x0 + x1) / 2 for x0, x1, _, _ in points]
        assert max(centres) - min(centres) > (right - left) / 2
        page.locator("#chart-scatter").screenshot(path=str(shot(page, "compare-scatter.png").with_name(
            "compare-scatter-chart.png")))
        assert page.console_errors == []
