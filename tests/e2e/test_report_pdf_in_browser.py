"""A quarterly report of the demo project prints to PDF with Chromium: from the page as a browser prints it, and
from `manage.py report --format pdf`; read back with pypdf, each states the totals of the runs' stored figures
and every data source with its licence, without the site's navigation."""

from __future__ import annotations

import io
import re
import unicodedata
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.models import Sum
from pypdf import PdfReader

from dashboard.demo import seed as demo
from dashboard.projects.models import Project
from planner.carbon.models import RunCarbon
from tests.conftest import DEMO_QUARTER
from tests.e2e.browser import browser_page, open_logged_in, session_cookie

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.browser]


def pdf_text(pdf: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(pdf)).pages)
    return re.sub(r"\s+", " ", unicodedata.normalize("NFKC", text))  # NFKC: the "ﬁ" ligature reads as "fi"


def assert_states_the_totals_and_sources(text: str, emissions_g: float, market_g: float) -> None:
    assert f"{emissions_g:.1f} g CO2e" in text and f"{market_g:.1f} g CO2e" in text
    # Narrow table cells wrap a long run name: compare without the spaces the wrapping adds.
    assert all(d.name in text.replace(" ", "") for d in demo.DEMO_RUNS), text
    assert "Methodology and data sources" in text
    assert "Electricity Maps yearly (ODbL, via co2.js)" in text and "ODbL 1.0" in text
    assert "Log out" not in text and "Download:" not in text  # the page's controls do not print


def test_the_quarterly_report_prints_to_pdf_with_its_totals_and_sources(live_server, demo_in_a_quarter, tmp_path: Path):
    totals = RunCarbon.objects.aggregate(g=Sum("emissions_g"), market=Sum("market_emissions_g"))
    project = Project.objects.get(name=demo.DEMO_PROJECT)
    cookie = session_cookie(live_server.url, demo.DEMO_USER)
    with browser_page() as page:
        open_logged_in(page, live_server.url, cookie, f"/projects/{project.pk}/report/?period={DEMO_QUARTER}")
        assert page.locator("#period-report h1").inner_text().endswith(DEMO_QUARTER)
        page.emulate_media(media="print")
        printed = page.pdf(format="A4")
        assert not page.console_errors
    assert_states_the_totals_and_sources(pdf_text(printed), totals["g"], totals["market"])

    out = tmp_path / "report.pdf"
    call_command("report", "--project", demo.DEMO_PROJECT, "--period", DEMO_QUARTER, "--format", "pdf",
                 "--output", str(out), stdout=io.StringIO())
    assert_states_the_totals_and_sources(pdf_text(out.read_bytes()), totals["g"], totals["market"])
