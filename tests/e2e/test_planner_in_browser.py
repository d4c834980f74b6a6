"""A new user plans the GPT-3 175B profile in the browser, as the issue's "done" describes: upload it on the
planner page, watch the solve's progress (a real Celery worker on Redis), see the frontier, open the
fastest plan's timeline, download its per-rank JSON, and enter a straggler time to get a plan and its
savings."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from planner.plans import planning
from planner.plans.models import FrontierJob, StageProfile
from planner.plans.profiles import SAMPLE_FILE, SAMPLES_DIR
from planner.plans.tasks import TASK_SOLVE_FRONTIER
from tests.conftest import REDIS_URL
from tests.e2e.browser import browser_page, log_in, open_logged_in, session_cookie
from tests.factories import member
from tests.worker_process import flush, publisher, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path(os.environ.get("WATTWISE_SCREENSHOTS", "/tmp/wattwise-screenshots"))
GPT3 = SAMPLES_DIR / SAMPLE_FILE


READ_PAGE = """() => {
    const box = document.getElementById('solve-progress');
    return {frontier: !!document.querySelector('#chart-frontier .main-svg'),
            state: box ? box.dataset.status + ': ' + box.querySelector('[data-progress-text]').textContent : null};
}"""


def follow_progress(page, process, timeout_s: float = 90) -> list[str]:
    """Watch the progress box until the page shows the frontier; return the states it went through."""
    from playwright.sync_api import Error

    states: list[str] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            now = page.evaluate(READ_PAGE)
        except Error:  # the page reloads itself when the solve ends
            now = {"frontier": False, "state": None}
        if now["frontier"]:
            return states
        if now["state"] and (not states or states[-1] != now["state"]):
            states.append(now["state"])
            if len(states) == 1:
                page.screenshot(path=str(SHOTS / "planner-progress.png"), full_page=True)
        if process.poll() is not None:
            raise AssertionError(f"the worker exited ({process.returncode}): {process.stdout.read()}")
        page.wait_for_timeout(50)
    import signal

    import redis
    r = redis.Redis.from_url(REDIS_URL)
    info = {k.decode(): r.type(k).decode() for k in r.keys("*")}
    qlen = r.llen("celery")
    process.send_signal(signal.SIGTERM)
    out = process.communicate(timeout=30)[0]
    raise AssertionError(f"the frontier never appeared; states seen: {states}; redis {info} celery={qlen}; worker: {out}")


@pytest.mark.services
def test_a_new_user_plans_the_gpt3_profile_in_the_browser(live_server, postgres, redis_url, monkeypatch):
    SHOTS.mkdir(parents=True, exist_ok=True)
    flush(redis_url)
    member("ana", "vision")
    # The live server runs tasks in-process (no broker in the test settings): send the solve to the real
    # worker instead, as a deployment with CELERY_BROKER_URL does.
    monkeypatch.setattr(planning, "_send", lambda job_id: publisher(redis_url).send_task(TASK_SOLVE_FRONTIER, args=[job_id]))

    with worker(redis_url) as process, browser_page() as page:
        log_in(page, live_server.url, "ana", "pw-ana")
        page.click("header nav >> text=Planner")
        page.wait_for_selector("#upload-form")
        assert page.is_visible("#no-profiles")

        # Upload the GPT-3 profile.
        page.set_input_files("#id_file", str(GPT3))
        page.fill("#id_gpu_name", "NVIDIA A100-SXM4-80GB")
        page.click("#upload-button")
        page.wait_for_selector("#plan-form")
        assert "8" in page.inner_text("#card-stages") and "855–1410 MHz" in page.inner_text("#card-frequencies")
        # Sensible defaults: the artifact's case.
        assert page.input_value("#id_num_microbatches") == "12"
        assert page.input_value("#id_unit_time_ms") == "1.0"
        assert page.input_value("#id_p_blocking_w") == "83.64"
        assert page.input_value("#id_schedule") == "1f1b" and page.input_value("#id_mode") == "default"
        page.wait_for_selector("#chart-profile .main-svg")
        page.screenshot(path=str(SHOTS / "planner-profile.png"), full_page=True)

        # Compute the frontier and watch the progress.
        page.click("#plan-button")
        page.wait_for_selector("#solve-progress, #chart-frontier")
        states = follow_progress(page, process)
        assert states, "the progress box was never shown"
        assert states[0].startswith(("queued", "running"))

        # The frontier: planned and realised, the all-max point, savings annotated; hover shows the plan.
        assert "16.3 %" in page.inner_text("#card-intrinsic")
        names = page.evaluate("document.getElementById('chart-frontier').data.map(t => t.name)")
        assert names[:3] == ["realised (profiled times and energies)", "planned (solver's model)", "all at max frequency"]
        annotations = " ".join(page.locator("#chart-frontier .annotation").all_text_contents())
        assert "fastest plan: -16.3 % energy" in annotations and "all at max frequency" in annotations
        x, y = page.evaluate("""() => { const gd = document.getElementById('chart-frontier');
            const pt = gd.calcdata[1][400], xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
            const r = gd.getBoundingClientRect();
            return [r.left + xa._offset + xa.c2p(pt.x), r.top + ya._offset + ya.c2p(pt.y)]; }""")
        page.mouse.move(x, y)
        page.wait_for_selector(".hoverlayer .hovertext")
        hover = " ".join(page.locator(".hoverlayer .hovertext").all_text_contents())
        assert re.search(r"plan \d+ · click to open", hover) and "mean MHz per stage" in hover
        page.screenshot(path=str(SHOTS / "planner-frontier.png"), full_page=True)

        # Open the fastest plan: its timeline, coloured by frequency, critical path marked.
        page.click("#open-fastest")
        page.wait_for_selector("#chart-timeline .main-svg")
        assert "Plan 1409 of 1410" in page.inner_text("h1")
        assert page.evaluate("document.getElementById('chart-timeline').data[0].y.length") == 192
        assert "critical path" in " ".join(page.locator("#chart-timeline .legend text").all_text_contents())
        page.screenshot(path=str(SHOTS / "planner-plan.png"), full_page=True)

        # Download its per-rank JSON.
        with page.expect_download() as download:
            page.click("#rank-0-json")
        rank0 = json.loads(Path(download.value.path()).read_text())
        assert rank0["rank"] == 0 and len(rank0["frequencies"]) == 24
        assert rank0["frequencies"][0][0] == "forward" and all(isinstance(f, int) for _, f in rank0["frequencies"])

        # Enter a straggler time: the chosen plan and its savings.
        page.click("text=back to the frontier")
        page.wait_for_selector("#chart-frontier .main-svg")
        page.fill("#id_straggler_s", "3.4")
        page.click("#straggler-button")
        page.wait_for_selector("#straggler-choice")
        choice = page.inner_text("#straggler-choice")
        assert "For T′ = 3.4000 s" in choice and "saves 27.2 %" in choice
        page.wait_for_selector("#chart-frontier .main-svg")
        page.locator("#straggler").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "planner-straggler.png"), full_page=True)
        page.click("#chosen-plan-link")
        page.wait_for_selector("#chart-timeline .main-svg")
        assert "saves at t′ = 3.4000 s" in page.inner_text("#card-saving").lower()
        assert page.console_errors == []
    job = FrontierJob.objects.get()  # outside the browser block: Django connections are per context there
    assert job.status == FrontierJob.Status.DONE and job.num_points == 1410


def test_a_bad_profile_is_refused_in_the_browser_with_the_problem_named(live_server, tmp_path):
    member("ana", "vision")
    bad = tmp_path / "broken.csv"
    lines = GPT3.read_text().splitlines()
    bad.write_text("\n".join(line for line in lines if not line.startswith("6,forward,1200,")) + "\n")
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie, "/planner/")
        page.set_input_files("#id_file", str(bad))
        page.click("#upload-button")
        page.wait_for_selector("#upload-error")
        error = page.inner_text("#upload-error")
        assert "nothing was stored" in error and "stage 6, instruction 'forward': frequency 1200 MHz missing" in error
        page.screenshot(path=str(SHOTS / "planner-bad-upload.png"), full_page=True)
    assert not StageProfile.objects.exists()
