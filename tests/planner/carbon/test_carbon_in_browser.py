"""Tried as a new user would, in a browser: import an Electricity Maps hourly CSV, stream a run in that
zone, see its emissions hour by hour with the intensity behind them, set a preference for ≥ 80 %
renewable regions, and get advice naming a region and a start time with the emissions saved."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connections

from dashboard.telemetry import ingest
from tests.e2e.browser import browser_page, log_in
from tests.factories import member, register
from tests.planner.carbon.support import em_hourly_csv
from wattwise_agent.replay import replay_simulated_run
from wattwise_agent.transport import CallableTransport

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]

SHOTS = Path(os.environ.get("WATTWISE_SCREENSHOTS", "/tmp/wattwise-screenshots"))
HANDLERS = {"open_run": ingest.open_run, "batch": ingest.ingest_batch, "close_run": ingest.close_run}


def diurnal(hour: int) -> float:
    """A German-looking day: cleaner around midday (solar), dirtier at night."""
    return 250.0 + 150.0 * abs(hour - 12) / 12


def test_import_stream_see_hourly_emissions_set_preferences_and_get_advice(live_server, tmp_path):
    SHOTS.mkdir(parents=True, exist_ok=True)
    day = (datetime.now(UTC) - timedelta(days=2)).replace(hour=0, minute=0, second=0, microsecond=0)
    csv_path = tmp_path / f"DE_{day:%Y}_hourly.csv"
    csv_path.write_text(em_hourly_csv("DE", day, [diurnal(h) for h in range(24)], renewable_pct=55, cfe_pct=60))
    node = register("gpu-berlin-1", "nlp")
    member("ana", "nlp")

    with browser_page() as page:
        log_in(page, live_server.url, "ana", "pw-ana")
        page.click("nav >> text=Intensity data")
        page.set_input_files("#id_file", str(csv_path))
        page.click("#import-form button[type=submit]")
        page.wait_for_selector("#import-jobs")  # the upload's job: with eager tasks, done before the redirect
        assert "24 rows added" in page.inner_text("#import-jobs")
        assert "DE" in page.inner_text("#coverage-table")
        page.screenshot(path=str(SHOTS / "carbon-data.png"), full_page=True)

        # An agent streams three hours in that zone (`python -m wattwise_agent stream --zone DE`), in-process.
        replay_simulated_run(
            CallableTransport(lambda envelope: HANDLERS[envelope["kind"]](envelope)), run="gpt-de", token=node.token,
            node=node.name, start=day + timedelta(hours=9, minutes=30), duration_s=3 * 3600, gpus=2, rate_hz=0.2,
            window_s=60, zone="DE",
        )
        # ORM calls made while Playwright's loop runs get their own connection: close it, or the test
        # database cannot be dropped at the end of the session.
        connections.close_all()

        page.click("nav >> text=Runs")
        page.click("text=gpt-de")
        page.wait_for_selector("#chart-carbon-hourly .main-svg")
        section = page.text_content("#carbon-section")
        assert "Emissions (location-based)" in section and "Emissions (market-based)" in section
        page.click("#carbon-hours summary")  # the hour-by-hour table loads when opened
        page.wait_for_selector("#carbon-hours table")
        assert "Electricity Maps (CSV import)" in page.inner_html("#carbon-hours")
        assert page.evaluate("document.getElementById('chart-carbon-hourly').data.length") == 2  # bars + intensity
        page.screenshot(path=str(SHOTS / "carbon-run.png"), full_page=True)

        page.click("nav >> text=Carbon")
        page.click("#carbon-projects >> text=preferences")
        page.fill("#id_min_renewable_pct", "80")
        page.click("#preferences-form button[type=submit]")
        page.wait_for_selector("#advice-form")
        page.select_option("#id_run", label="gpt-de")
        page.check("#id_interruptible")
        page.click("#advice-form button[type=submit]")
        page.wait_for_selector("#advice-best")
        best = page.inner_text("#advice-best")
        assert "Best: run in" in best and "starting" in best and "saved" in best
        assert "azure:norwayeast" in best or "gcp:northamerica-northeast1" in best or "aws:ca-central-1" in best
        assert "renewable" in page.text_content("#advice-excluded")
        page.wait_for_selector("#chart-advice .main-svg")
        page.screenshot(path=str(SHOTS / "carbon-advice.png"), full_page=True)
        assert page.console_errors == []
