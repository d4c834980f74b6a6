"""A run across four UTC hours, hand-computed end to end: batches ingested, hourly intensity imported
with one hour missing, PUE 1.25, a certificate and a supplier factor; run_summary gives these numbers."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, Run
from planner.carbon.models import Basis, Certificate, FallbackStep, NodeSite, ProjectCarbon, RunCarbon, Site
from tests.factories import register
from tests.planner.carbon.support import T0, em_hourly_csv, recompute_figures, stream_hours

pytestmark = pytest.mark.django_db

# GPU energy per UTC hour (kWh) from 2026-01-01T00:00Z, and the imported lifecycle intensity (g/kWh)
# of DE for the first three hours; 03:00 is not in the file.
ENERGY_KWH = [2.0, 1.0, 0.5, 1.5]
INTENSITY = [400.0, 250.0, 100.0]
PUE = 1.25
DE_YEARLY_2025 = 342.0  # Electricity Maps yearly, DE, 2025 (the newest year shipped; the hour is in 2026)

# Hand-computed: energy × PUE × intensity, per hour.
HOURLY_G = [2.0 * 1.25 * 400, 1.0 * 1.25 * 250, 0.5 * 1.25 * 100, 1.5 * 1.25 * DE_YEARLY_2025]
assert HOURLY_G == [1000.0, 312.5, 62.5, 641.25]
LOCATION_G = 2016.25
# Market-based: 1 kWh of retired 2026 EU Guarantees of Origin at 0 g, the other 6.25 − 1 = 5.25 kWh
# of facility energy at the supplier's 300 g/kWh.
MARKET_G = 5.25 * 300.0


@pytest.fixture
def summary(tmp_path, capsys):
    node = register("gpu-de-1", "llm")
    project = Project.objects.get(name="llm")
    site = Site.objects.create(project=project, name="frankfurt-dc", where="DE", pue=PUE)
    NodeSite.objects.create(node=Node.objects.get(name="gpu-de-1"), site=site)
    settings = ProjectCarbon.objects.create(project=project, supplier_factor_g_per_kwh=300.0,
                                            supplier_factor_source="supplier disclosure 2026")
    settings.save()
    Certificate.objects.create(project=project, kind="GO", energy_kwh=1.0, vintage_year=2026,
                               market_boundary="EU", retired=True)

    csv_file = tmp_path / "DE_2026_hourly.csv"
    csv_file.write_text(em_hourly_csv("DE", T0, INTENSITY))
    call_command("import_intensity", str(csv_file))

    stream_hours(node, "llama-hand", ENERGY_KWH)
    recompute_figures("llama-hand")  # as the task does when the run closes
    capsys.readouterr()
    call_command("run_summary", "llama-hand")
    return json.loads(capsys.readouterr().out)


def test_run_summary_gives_the_hand_computed_location_based_emissions(summary):
    assert summary["energy_j"] == pytest.approx(sum(ENERGY_KWH) * 3.6e6)
    assert summary["emissions_g"] == pytest.approx(LOCATION_G)
    assert summary["pue"] == pytest.approx(PUE)


def test_each_hour_has_its_energy_intensity_emissions_and_source(summary):
    hourly = summary["hourly"]
    assert [h["hour"] for h in hourly] == [f"2026-01-01T0{h}:00:00Z" for h in range(4)]
    assert [h["energy_j"] for h in hourly] == pytest.approx([kwh * 3.6e6 for kwh in ENERGY_KWH])
    assert [h["intensity_g_per_kwh"] for h in hourly] == pytest.approx([*INTENSITY, DE_YEARLY_2025])
    assert [h["emissions_g"] for h in hourly] == pytest.approx(HOURLY_G)
    assert [h["source"] for h in hourly[:3]] == ["Electricity Maps (CSV import)"] * 3


def test_the_missing_hour_falls_back_to_the_zone_yearly_figure_and_says_so(summary):
    missing = summary["hourly"][3]
    assert missing["fallback"] is True and missing["step"] == "zone_yearly"
    assert missing["source"] == "Electricity Maps yearly (ODbL, via co2.js)"
    assert "no hourly data for DE at 2026-01-01T03:00Z" in missing["reason"]
    assert "2025 is the newest year available" in missing["reason"]
    assert summary["carbon"]["fallback_hours"] == 1
    assert not any(h["fallback"] for h in summary["hourly"][:3])


def test_market_based_uses_the_certificate_and_the_supplier_factor_side_by_side(summary):
    assert summary["market_emissions_g"] == pytest.approx(MARKET_G)
    node = summary["carbon"]["nodes"]["gpu-de-1"]
    assert node["market"]["certificate_kwh"] == pytest.approx(1.0)
    assert node["market"]["uncovered_method"] == "supplier"
    assert summary["emissions_g"] == pytest.approx(LOCATION_G)  # the location-based figure is untouched


def test_the_node_says_where_it_ran_and_how_that_is_known(summary):
    node = summary["carbon"]["nodes"]["gpu-de-1"]
    assert (node["where"], node["zone"], node["located_by"], node["site"]) == ("DE", "DE", "site", "frankfurt-dc")
    assert node["pue"] == PUE


def test_the_figures_are_stored_with_their_provenance(summary):
    stored = RunCarbon.objects.get(run=Run.objects.get(name="llama-hand"))
    hours = list(stored.nodes.get().hours.order_by("hour_utc"))
    assert [(h.step, h.basis, h.year) for h in hours] == [
        (FallbackStep.HOURLY, Basis.LIFECYCLE, 2026), (FallbackStep.HOURLY, Basis.LIFECYCLE, 2026),
        (FallbackStep.HOURLY, Basis.LIFECYCLE, 2026), (FallbackStep.ZONE_YEARLY, Basis.LIFECYCLE, 2025),
    ]
    assert stored.emissions_g == pytest.approx(LOCATION_G) and not stored.stale
