"""A project's period report adds up to its runs' stored figures, in every form (CSV, Markdown, the page, the
API), names its data sources with their licences, and refuses a period that does not parse."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Sum
from django.http import HttpRequest
from django.urls import reverse

from dashboard.demo import seed as demo
from dashboard.projects.models import Project
from dashboard.reports.periods import BadPeriod, parse_period
from dashboard.telemetry.models import Run, RunGpu, RunWork
from dashboard.web.templatetags.units import si
from planner.carbon.models import Certificate, OffsetRetirement, RunCarbon
from planner.units import J_PER_KWH
from tests.conftest import DEMO_QUARTER
from tests.factories import member

pytestmark = pytest.mark.django_db


def energy_j(run: Run) -> float:
    return sum(RunGpu.objects.filter(run=run).values_list("energy_j", flat=True))


def report(*args: str) -> str:
    out = io.StringIO()
    call_command("report", "--project", demo.DEMO_PROJECT, *args, stdout=out)
    return out.getvalue()


def stored_totals() -> dict[str, float]:
    """The oracle: the project's runs' stored figures, summed by the database."""
    carbon = RunCarbon.objects.filter(run__project__name=demo.DEMO_PROJECT).aggregate(
        emissions=Sum("emissions_g"), market=Sum("market_emissions_g"), facility=Sum("facility_energy_kwh"))
    energy = RunGpu.objects.filter(run__project__name=demo.DEMO_PROJECT).aggregate(energy=Sum("energy_j"))
    return {"energy_kwh": energy["energy"] / J_PER_KWH, "emissions_g": carbon["emissions"],
            "market_emissions_g": carbon["market"], "facility_energy_kwh": carbon["facility"]}


def test_a_quarterly_csv_report_adds_up_to_its_runs_stored_figures_and_names_sources_and_licences(demo_in_a_quarter):
    project = Project.objects.get(name=demo.DEMO_PROJECT)
    Certificate.objects.create(project=project, kind="GO", label="wind-2026", energy_kwh=5.0, vintage_year=2026,
                               market_boundary="EU")
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 9, 30), credit_type="avoidance",
                                    tonnes=0.25, price_per_tonne=10.0, registry="Verra", reference="VCS-1")
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 10, 1), credit_type="avoidance",
                                    tonnes=9.0, price_per_tonne=10.0)  # the next quarter's
    RunWork.objects.create(run=Run.objects.get(name="bert-large-finetune"), unit="tokens", amount=2_000_000)
    rows = list(csv.DictReader(io.StringIO(report("--period", DEMO_QUARTER, "--format", "csv"))))
    runs = [r for r in rows if r["section"] == "run"]
    (total,) = [r for r in rows if r["section"] == "total"]
    assert {r["name"] for r in runs} == {d.name for d in demo.DEMO_RUNS}
    oracle = stored_totals()
    for column, expected in oracle.items():
        assert float(total[column]) == pytest.approx(expected, rel=1e-12), column
        assert sum(float(r[column]) for r in runs) == pytest.approx(expected, rel=1e-12), column
    assert oracle["emissions_g"] > 0
    # The breakdowns add up to the same energy: by GPU model (and CPU, DRAM) and by site.
    assert sum(float(r["energy_kwh"]) for r in rows if r["section"] == "gpu_model") == pytest.approx(oracle["energy_kwh"])
    sites = {r["name"]: r for r in rows if r["section"] == "site"}
    assert sum(float(r["emissions_g"]) for r in sites.values()) == pytest.approx(oracle["emissions_g"])
    assert "demo-frankfurt (DE)" in sites and "aws:eu-north-1 (SE-SE3)" in sites
    assert [r["detail"] for r in rows if r["section"] == "offset_retired"] == ["0.25 t avoidance; Verra VCS-1"]
    assert [r["name"] for r in rows if r["section"] == "instrument"] == ["GO wind-2026"]
    # Energy and emissions per unit of work, per run and by tag (families of runs).
    bert = next(r for r in runs if r["name"] == "bert-large-finetune")
    assert bert["unit"] == "tokens" and float(bert["energy_j_per_unit"]) == pytest.approx(
        float(bert["energy_kwh"]) * J_PER_KWH / 2_000_000)
    assert bert["emissions_g_per_unit"] == ""  # the certificate above flagged the figures stale: not current
    tags = {r["name"]: r for r in rows if r["section"] == "tag"}
    assert tags["finetune"]["tokens"] == "2000000" and tags["llm"]["unit"] == ""
    licences = {r["name"]: r["detail"] for r in rows if r["section"] == "source"}
    assert licences["Electricity Maps yearly (ODbL, via co2.js)"].startswith("ODbL")
    assert all(licences.values())


def test_the_markdown_report_page_and_api_say_the_same_totals(demo_in_a_quarter, client):
    oracle = stored_totals()
    bert = Run.objects.get(name="bert-large-finetune")
    RunWork.objects.create(run=bert, unit="tokens", amount=2_000_000)
    per_token = (si(energy_j(bert) / 2_000_000, "J"), si(bert.carbon.emissions_g / 2_000_000, "g"))
    markdown = report("--from", "2026-07-01", "--to", "2026-09-30", "--format", "md")
    assert f"| emissions, location-based | {oracle['emissions_g']:,.1f} g CO2e |" in markdown
    assert "## Methodology and data sources" in markdown and "ODbL" in markdown
    assert f"| {per_token[0]}/token, {per_token[1]} CO2e |" in markdown  # energy and emissions per token

    project = Project.objects.get(name=demo.DEMO_PROJECT)
    client.login(request=HttpRequest(), username=demo.DEMO_USER, password=demo.DEMO_PASSWORD)
    url = reverse("project_report", args=[project.pk])
    page = client.get(url, {"period": DEMO_QUARTER}).content.decode()
    assert f"{oracle['emissions_g']:.1f} g CO2e" in page and "Methodology and data sources" in page
    assert f"{per_token[0]}/token, {per_token[1]}" in page
    download = client.get(url, {"period": DEMO_QUARTER, "format": "md"})
    assert download["Content-Disposition"] == f'attachment; filename="demo-report-{DEMO_QUARTER}.md"'
    assert download.content.decode() == report("--period", DEMO_QUARTER)
    answer = client.get(f"/api/projects/{project.pk}/report", {"period": DEMO_QUARTER}).json()
    assert answer["emissions_g"] == pytest.approx(oracle["emissions_g"]) and len(answer["runs"]) == 3
    # The next quarter has none of these runs.
    assert client.get(f"/api/projects/{project.pk}/report", {"period": "2026-Q4"}).json()["runs"] == []


def test_a_bad_period_is_refused_with_what_was_expected(client):
    member("ana", "vision")
    project = Project.objects.get(name="vision")
    client.login(request=HttpRequest(), username="ana", password="pw-ana")
    url = reverse("project_report", args=[project.pk])
    response = client.get(url, {"period": "2026-Q5"})
    assert response.status_code == 400 and "a quarter (2026-Q4)" in response.content.decode()
    assert client.get(url, {"period": "custom", "from": "2026-02-01", "to": "2026-01-01"}).status_code == 400
    assert client.get(f"/api/projects/{project.pk}/report", {"period": "13"}).status_code == 400
    with pytest.raises(CommandError, match="give --period"):
        call_command("report", "--project", "vision")


def test_another_projects_report_is_not_found(client):
    member("eve", "other")
    Project.objects.create(name="vision")
    client.login(request=HttpRequest(), username="eve", password="pw-eve")
    pk = Project.objects.get(name="vision").pk
    assert client.get(reverse("project_report", args=[pk])).status_code == 404
    assert client.get(f"/api/projects/{pk}/report").status_code == 404


@pytest.mark.parametrize(("spec", "first", "last"), [
    ("2026-02", date(2026, 2, 1), date(2026, 2, 28)), ("2024-02", date(2024, 2, 1), date(2024, 2, 29)),
    ("2026-Q4", date(2026, 10, 1), date(2026, 12, 31)), ("2026-q1", date(2026, 1, 1), date(2026, 3, 31)),
    ("2026", date(2026, 1, 1), date(2026, 12, 31)),
])
def test_months_quarters_and_years_cover_their_whole_days(spec, first, last):
    period = parse_period(spec)
    assert (period.first, period.last) == (first, last)


@pytest.mark.parametrize("spec", ["2026-13", "2026-Q0", "26", "last week", "0000", "9999", "1969-Q4"])
def test_periods_that_do_not_parse_are_refused(spec):
    with pytest.raises(BadPeriod):
        parse_period(spec)


def test_runs_count_in_the_period_they_started_in(demo_in_a_quarter):
    run = Run.objects.get(name="llama-13b-pretrain")
    assert run.started_at is not None and run.started_at.date() == date(2026, 8, 15)
