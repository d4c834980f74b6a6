"""The demo, as `make run` seeds it, in the browser: every main page draws all its charts without a console
error, and each chart can be read (see UNREADABLE). The full-page screenshots it takes are the ones in
docs/screenshots (README, "Screenshots"); refresh them with

    WATTWISE_DOCS_SCREENSHOTS=docs/screenshots pytest -m browser tests/e2e/test_screenshots_in_browser.py

Left unset, they go to $WATTWISE_SCREENSHOTS/docs (/tmp/wattwise-screenshots/docs), so a test run leaves the
repository alone."""

from __future__ import annotations

import os
import warnings
from dataclasses import replace
from pathlib import Path

import pytest

from dashboard.demo import seed as demo
from dashboard.telemetry.models import Run
from planner.plans.models import FrontierJob
from tests.e2e.browser import SHOTS, browser_page, follow, log_in, shot, wait_for_charts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

DOCS = Path(os.environ.get("WATTWISE_DOCS_SCREENSHOTS") or SHOTS / "docs")
MAIN_RUN = demo.DEMO_RUNS[0]  # llama-13b-pretrain: 2 nodes × 4 GPUs, 3 h, on two grids

# What a reader needs to read a chart: a title; something drawn, but no more than its width can show; each value
# axis titled with its unit (category and date axes explain themselves); a legend that hides no tick label or
# axis title; room to draw in; and the drawing inside its box. Returns the problems found, as text.
UNREADABLE = """(ids) => ids.flatMap(id => {
    const gd = document.getElementById(id), full = gd._fullLayout, problems = [];
    const title = full.title && full.title.text;
    if (!title) problems.push('no title');
    const points = gd._fullData.filter(t => t.visible === true).reduce((n, t) => n + (t._length || 0), 0);
    if (!points) problems.push('nothing drawn');
    // A line with more points than pixels across turns noise into a solid band (the min–max band is for that).
    const densest = Math.max(0, ...gd._fullData.filter(t => t.visible === true && /lines/.test(t.mode || ''))
                                              .map(t => t._length || 0));
    if (densest > 2 * full._size.w) problems.push('too dense: ' + densest + ' points on a line ' + Math.round(full._size.w) + ' px wide');
    for (const name of Object.keys(full).filter(k => /^[xy]axis\\d*$/.test(k))) {
        const axis = full[name];
        if (!axis.visible || axis.type === 'category' || axis.type === 'date') continue;
        if (!(axis.title && axis.title.text)) problems.push(name + ' has no title (unit)');
    }
    const legend = gd.querySelector('g.legend');
    if (legend) {
        const l = legend.getBoundingClientRect();
        const covered = [...gd.querySelectorAll('g[class*="tick"] > text, g[class*="title"] > text')]
            // Not the chart title: a legend just under it touches its box without hiding a glyph (carbon GPU chart).
            .filter(t => !legend.contains(t) && !t.closest('.g-gtitle') && t.textContent.trim())
            .map(t => { const r = t.getBoundingClientRect();
                        return [t.textContent.trim(), Math.min(r.right, l.right) - Math.max(r.left, l.left),
                                Math.min(r.bottom, l.bottom) - Math.max(r.top, l.top)]; })
            // Text boxes include the line's leading: a few pixels of overlap hide nothing.
            .filter(([, w, h]) => w > 2 && h > 2).map(([text, , h]) => text + ' (' + Math.round(h) + ' px)');
        if (covered.length) problems.push('the legend covers ' + JSON.stringify(covered));
    }
    const box = gd.getBoundingClientRect(), svg = gd.querySelector('.main-svg').getBoundingClientRect();
    if (svg.height < 250) problems.push('squashed: ' + Math.round(svg.height) + ' px high');
    if (svg.bottom > box.bottom + 1 || svg.right > box.right + 1) problems.push('drawn outside its box');
    return problems.map(p => id + ' (' + (title || 'untitled') + '): ' + p);
})"""


@pytest.fixture
def seeded_demo(monkeypatch):
    if not os.environ.get("WATTWISE_DOCS_SCREENSHOTS"):
        # The same runs sampled every 5 s instead of every second, which roughly halves the seeding (simulating
        # the GPUs dominates it). The docs' screenshots are taken of the demo exactly as `make run` seeds it.
        monkeypatch.setattr(demo, "DEMO_RUNS", tuple(replace(d, rate_hz=0.2, window_s=300) for d in demo.DEMO_RUNS))
    demo.demo_user()
    demo.seed()
    main = Run.objects.get(name=MAIN_RUN.name)
    return {"run": main.pk, "gpu": main.run_gpus.order_by("gpu__node__name", "gpu__index").first().pk,
            "frontier": FrontierJob.objects.get(status=FrontierJob.Status.DONE).pk,
            "profile": FrontierJob.objects.get(status=FrontierJob.Status.DONE).profile_id}


# Problems seen and reported, not yet fixed (drawn by files outside this test's reach); remove a line once fixed.
KNOWN_PROBLEMS: tuple[str, ...] = (
)


def docs_shot(page, name: str) -> None:
    """A full-page PNG for the docs, in 256 colours when Pillow is at hand (a third of the size, same look)."""
    path = shot(page, name, DOCS)
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - Pillow comes with matplotlib in the dev install
        return
    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small.save(path, optimize=True)


def readable(page, name: str) -> list[str]:
    """The problems of the page's charts that nobody has reported yet."""
    ids = wait_for_charts(page)
    assert ids, "no charts on " + page.url
    problems = [f"{name}: {problem}" for problem in page.evaluate(UNREADABLE, ids)]
    for problem in problems:
        if problem.startswith(KNOWN_PROBLEMS):
            warnings.warn(f"known, reported: {problem}", stacklevel=2)
    return [problem for problem in problems if not problem.startswith(KNOWN_PROBLEMS)]


def test_the_demos_main_pages_draw_readable_charts(live_server, seeded_demo):
    problems: list[str] = []
    with browser_page() as page:
        log_in(page, live_server.url, demo.DEMO_USER, demo.DEMO_PASSWORD)
        assert page.locator("#runs-table tbody tr").count() == len(demo.DEMO_RUNS)
        docs_shot(page, "runs.png")

        follow(page, f"text={MAIN_RUN.name}")
        problems += readable(page, "run")
        assert page.evaluate("document.getElementById('chart-power').data.length") == MAIN_RUN.nodes * MAIN_RUN.gpus
        assert page.is_visible("#chart-carbon-hourly")
        docs_shot(page, "run.png")

        page.goto(f"{live_server.url}/runs/{seeded_demo['run']}/gpus/{seeded_demo['gpu']}/")
        problems += readable(page, "gpu")
        docs_shot(page, "gpu.png")

        follow(page, "header nav >> text=Runs")
        for row in page.locator("#runs-table tbody tr").all():
            row.locator("input[type=checkbox]").check()
        page.click("#compare-button")
        page.wait_for_url("**/compare/?runs=*")
        problems += readable(page, "compare")
        # The share link names the test server's random port: show the address `make run` serves instead.
        page.evaluate("""() => { const link = document.getElementById('share-link');
                                 link.value = link.value.replace(location.origin, 'http://127.0.0.1:8000'); }""")
        docs_shot(page, "compare.png")

        page.goto(f"{live_server.url}/planner/frontiers/{seeded_demo['frontier']}/")
        problems += readable(page, "planner-frontier")
        docs_shot(page, "planner-frontier.png")

        follow(page, "#open-fastest")
        problems += readable(page, "planner-plan")
        docs_shot(page, "planner-plan.png")

        follow(page, "header nav >> text=Carbon")
        page.click(f"#carbon-projects >> text={demo.DEMO_PROJECT}")
        page.wait_for_selector("#project-runs")
        assert page.locator("#project-runs tbody tr").count() == len(demo.DEMO_RUNS)
        docs_shot(page, "carbon.png")

        page.click("nav.tabs >> text=Where & when to train")
        page.select_option("#id_run", label=MAIN_RUN.name)
        page.click("#advice-form button[type=submit]")
        page.wait_for_selector("#advice-best")
        problems += readable(page, "carbon-advice")
        docs_shot(page, "carbon-advice.png")

        # The rest of what the header reaches, and the profile's chart: nothing in the console either.
        for link in ("Nodes", "Planner", "Carbon", "Intensity data", "Projects"):
            follow(page, f"header nav >> text={link}")
        page.goto(f"{live_server.url}/planner/profiles/{seeded_demo['profile']}/")
        wait_for_charts(page)
        assert page.console_errors == []
        assert page.console_messages == [], "\n".join(page.console_messages)
    assert problems == [], "\n".join(problems)
