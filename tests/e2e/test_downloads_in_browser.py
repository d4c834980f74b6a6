"""A user downloads a run's samples as CSV from its page: every stored sample, one row each, under a header
that names the units; with a time range picked, the link downloads exactly the samples of that range."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from dashboard.runs.exports import SAMPLE_HEADER
from dashboard.telemetry.models import RunGpu
from tests.e2e.browser import browser_page, follow, open_logged_in, session_cookie, wait_for_charts
from tests.e2e.data import stream_batches
from tests.factories import T0_MS, member, register

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


@pytest.fixture
def stored_samples() -> int:
    stream_batches(register("node-a", "vision"), "bert-large", range(20), gpus=2)  # 2 × 1,000 samples
    member("ana", "vision")
    return sum(RunGpu.objects.values_list("samples", flat=True))


def download(page, selector: str) -> tuple[str, list[list[str]]]:
    with page.expect_download() as event:
        page.click(selector)
    text = Path(event.value.path()).read_text(encoding="utf-8")
    return event.value.suggested_filename, list(csv.reader(io.StringIO(text)))


def test_the_samples_csv_downloaded_from_the_run_page_has_a_row_per_stored_sample(live_server, stored_samples):
    assert stored_samples == 2000
    cookie = session_cookie(live_server.url, "ana")
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie)
        follow(page, "text=bert-large")
        wait_for_charts(page)

        name, rows = download(page, "#download-samples-csv")
        assert name == "vision-bert-large-samples.csv"
        assert rows[0] == SAMPLE_HEADER
        assert {"power_w", "energy_counter_j", "sm_clock_mhz", "util_pct", "temp_c"} <= set(rows[0])  # units named
        assert len(rows) - 1 == stored_samples
        first = dict(zip(rows[0], rows[1], strict=True))
        assert first["time_utc"] == "2026-01-01T00:00:00.000Z" and first["node"] == "node-a"
        assert float(first["power_w"]) == 300.0 and float(first["energy_counter_j"]) == 1000.0
        # What the browser was sent: CSV, as an attachment that no cache keeps.
        response = page.request.get(live_server.url + page.get_attribute("#download-samples-csv", "href"))
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="vision-bert-large-samples.csv"'
        assert "no-store" in response.headers["cache-control"]

        # The per-minute rollups: one row per GPU-minute (100 s of samples span two minutes).
        name, rows = download(page, "#download-minutes-csv")
        assert name == "vision-bert-large-minutes.csv"
        assert "energy_j" in rows[0] and "mean_power_w" in rows[0] and len(rows) - 1 == 4

        # Pick a custom range: the link now downloads the samples drawn, both ends included.
        page.fill("#range-from", "2026-01-01T00:00:20")
        page.fill("#range-to", "2026-01-01T00:00:50")
        page.click("#range-picker button[type=submit]")
        page.wait_for_url("**/?from=*")
        wait_for_charts(page)
        _, rows = download(page, "#download-samples-csv")
        t_ms = [int(row[1]) for row in rows[1:]]
        assert len(t_ms) == 2 * 301
        assert min(t_ms) == T0_MS + 20_000 and max(t_ms) == T0_MS + 50_000
        assert page.console_errors == []
