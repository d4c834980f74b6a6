"""The offsets ledger: tonnes and cost per run and per project, priced per credit type with the price's
source and date, a buffer, never netted into emissions, exported as CSV."""

from __future__ import annotations

import csv
import io
from datetime import date

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from dashboard.projects.models import Project
from planner.carbon.imports import import_file
from planner.carbon.models import CreditPrice, CreditType, OffsetPolicy, OffsetRetirement, RunCarbon
from planner.carbon.offsetting import project_ledger
from tests.factories import member, register
from tests.planner.carbon.support import T0, em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db


@pytest.fixture
def project():
    # 1 kWh per hour for two hours at 500 g/kWh: 1000 g per run, two runs.
    import_file(em_hourly_csv("PL", T0, [500.0, 500.0]).encode(), "PL_2026_hourly.csv")
    node = register("gpu-pl", "speech")
    stream_hours(node, "whisper-a", [1.0, 1.0], zone="PL")
    stream_hours(node, "whisper-b", [1.0, 1.0], zone="PL")
    recompute_figures()  # what the tasks do when the runs close
    return Project.objects.get(name="speech")


def test_each_run_and_the_project_get_tonnes_and_cost_at_the_default_price(project):
    ledger = project_ledger(project)
    assert [line.emissions_g for line in ledger.lines] == pytest.approx([1000.0, 1000.0])
    quote = ledger.lines[0].quote
    assert quote.credit_type == "avoidance" and quote.price_per_tonne == 6.0
    assert quote.tonnes_to_retire == pytest.approx(0.001) and quote.cost == pytest.approx(0.006)
    assert quote.price_source.startswith("broad voluntary-market average") and quote.price_as_of == date(2025, 1, 1)
    assert ledger.balance.tonnes_to_retire == pytest.approx(0.002) and ledger.balance.cost == pytest.approx(0.012)
    assert ledger.balance.currency == "USD"


def test_whole_credits_round_the_projects_total_once_not_each_run(project):
    OffsetPolicy.objects.update_or_create(project=project, defaults={
        "credit_type": "durable_removal", "buffer_pct": 20.0, "whole_credits": True})
    CreditPrice.objects.create(project=project, credit_type=CreditType.DURABLE_REMOVAL, price_per_tonne=180.0, currency="EUR",
                               source="biochar offer, supplier X", as_of=date(2026, 5, 1))
    ledger = project_ledger(project)
    quote = ledger.lines[0].quote
    assert quote.tonnes_to_retire == pytest.approx(0.0012) and quote.credits == pytest.approx(0.0012)
    assert quote.cost == pytest.approx(0.216) and quote.currency == "EUR"
    assert quote.price_source == "biochar offer, supplier X" and quote.price_as_of == date(2026, 5, 1)
    # 2.4 kg with the buffer, over two runs: one whole credit, not one per run.
    assert ledger.balance.credits == 1.0 and ledger.balance.cost == 180.0 and ledger.balance.currency == "EUR"


def test_retired_credits_are_netted_against_what_is_still_to_retire(project, client):
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 1), credit_type=CreditType.AVOIDANCE,
                                    tonnes=0.0015, price_per_tonne=6.0)
    owed = project_ledger(project).balance
    assert owed.tonnes_to_retire == pytest.approx(0.002) and owed.retired_tonnes == pytest.approx(0.0015)
    assert owed.required_tonnes == pytest.approx(0.0005) and owed.cost == pytest.approx(0.003)
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 2), credit_type=CreditType.AVOIDANCE,
                                    tonnes=1.0, price_per_tonne=6.0)
    assert project_ledger(project).balance.required_tonnes == 0.0  # more retired than needed: nothing left


def test_every_amount_on_the_offsets_page_shows_its_currency(project, client):
    OffsetPolicy.objects.update_or_create(project=project, defaults={"whole_credits": True})
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 1), credit_type=CreditType.AVOIDANCE,
                                    tonnes=1.0, price_per_tonne=7.5, currency="EUR")
    client.force_login(member("ana", "speech"))
    html = client.get(reverse("carbon:offsets", args=[project.pk])).content.decode()
    cards = html[html.index('id="card-offset-required"'):html.index("</section>")]
    # 2 kg to retire, netted by the tonne retired: nothing left.
    assert '<div class="value">0 g</div>' in cards.split('id="card-offset-cost"')[0] and "less 1.00 t retired" in cards
    assert "0.00 USD" in cards and "7.50 EUR" in cards
    retired = html[html.index('id="retirements-table"'):]
    assert "7.50 EUR/t" in retired and ">7.50 EUR<" in retired


def test_offsets_are_never_subtracted_from_the_emissions(project):
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 1), credit_type=CreditType.AVOIDANCE,
                                    tonnes=5.0, price_per_tonne=6.0)
    assert sum(RunCarbon.objects.values_list("emissions_g", flat=True)) == pytest.approx(2000.0)
    ledger = project_ledger(project)
    assert ledger.emissions_g == pytest.approx(2000.0) and ledger.balance.retired_tonnes == 5.0


def test_custom_credits_need_a_price(project, client):
    OffsetPolicy.objects.update_or_create(project=project, defaults={"credit_type": "custom"})
    ledger = project_ledger(project)
    assert ledger.lines[0].quote is None and "no price set for custom credits" in ledger.lines[0].problem
    assert ledger.balance.cost is None and ledger.balance.currency is None


def test_the_ledger_exports_as_csv(project, client):
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 1), credit_type=CreditType.NATURE_REMOVAL,
                                    tonnes=0.5, price_per_tonne=27.0, registry="Verra", reference="VCS-123")
    client.force_login(member("ana", "speech"))
    response = client.get(reverse("carbon:offsets_csv", args=[project.pk]))
    assert response["Content-Type"].startswith("text/csv")
    assert 'filename="speech-offsets-ledger.csv"' in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    required = [r for r in rows if r["kind"] == "required"]
    assert {r["run"] for r in required} == {"whisper-a", "whisper-b"}
    assert required[0]["location_emissions_g"] == "1000.000" and required[0]["tonnes_to_retire"] == "0.001000"
    assert required[0]["price_as_of"] == "2025-01-01" and "gross" in required[0]["note"]
    (retired,) = [r for r in rows if r["kind"] == "retired"]
    assert (retired["registry"], retired["reference"], retired["cost"]) == ("Verra", "VCS-123", "13.50")


def test_only_managers_change_prices_and_the_form_checks_them(project, client):
    ana = member("ana", "speech")
    client.force_login(ana)
    url = reverse("carbon:offsets", args=[project.pk])
    price = {"action": "price", "price-credit_type": "avoidance", "price-price_per_tonne": "-3",
             "price-currency": "US$", "price-source": "x", "price-as_of": "2026-01-01"}
    assert client.post(url, price).status_code == 403
    ana.user_permissions.add(Permission.objects.get(codename="change_site"))
    html = client.post(url, price).content.decode()
    assert "greater than or equal to 0" in html and "three-letter currency code" in html
    assert not CreditPrice.objects.exists()
    price.update({"price-price_per_tonne": "9.5", "price-currency": "eur"})
    assert client.post(url, price).status_code == 302
    assert CreditPrice.objects.get().currency == "EUR"
    page = client.get(url).content.decode()
    assert "9.50 EUR" in page and "project's price" in page


def test_user_text_in_the_csv_cannot_become_a_spreadsheet_formula(project, client):
    OffsetRetirement.objects.create(project=project, retired_on=date(2026, 6, 1), credit_type=CreditType.AVOIDANCE,
                                    tonnes=1.0, price_per_tonne=6.0, reference="=HYPERLINK(\"x\")")
    client.force_login(member("ana", "speech"))
    text = client.get(reverse("carbon:offsets_csv", args=[project.pk])).content.decode()
    (retired,) = [r for r in csv.DictReader(io.StringIO(text)) if r["kind"] == "retired"]
    assert retired["reference"] == "'=HYPERLINK(\"x\")"
