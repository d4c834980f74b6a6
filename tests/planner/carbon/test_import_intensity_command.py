"""`manage.py import_intensity FILE [--zone Z]`: each format on realistic files, broken files refused
with nothing half-imported, and importing the same file twice changes nothing the second time."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from dashboard.projects.models import Project
from planner.carbon.models import ImportedRun, IntensityImport, IntensityRow
from tests.planner.carbon.support import EM_HEADER_NEW, EM_HEADER_OLD, T0, em_hourly_csv, fixture, snapshot

pytestmark = pytest.mark.django_db


def run_import(tmp_path, name: str, content: str | bytes, *args: str) -> str:
    path = tmp_path / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = StringIO()
    call_command("import_intensity", str(path), *args, stdout=out)
    return out.getvalue()


@pytest.mark.parametrize(
    ("name", "rows", "zone", "granularity", "first_value"),
    [
        ("SE-SE3_2024_hourly.csv", 4, "SE-SE3", "hour", 24.83),  # 2024+ header generation
        ("DE_2022_hourly.csv", 6, "DE", "hour", 409.87),  # 2021–2023 header generation
        ("FR_2023_daily.csv", 3, "FR", "day", 38.41),
        ("PL_2022_monthly.csv", 3, "PL", "month", 748.3),
        ("NO-NO1_2024_yearly.csv", 1, "NO-NO1", "year", 30.2),
        ("electricitymaps_v3_carbon_intensity_history_US-MIDW-MISO.json", 24, "US-MIDW-MISO", "hour", 501.0),
        ("uk_national_intensity.json", 3, "GB", "hour", 133.0),
        ("uk_regionid_13.json", 2, "GB-CI-13", "hour", 153.5),
    ],
)
def test_realistic_files_of_each_format_are_imported(tmp_path, name, rows, zone, granularity, first_value):
    message = run_import(tmp_path, name, fixture(name))
    stored = IntensityRow.objects.filter(zone=zone).order_by("start_utc")
    assert stored.count() == rows
    assert {r.granularity for r in stored} == {granularity}
    assert stored.first().intensity_g_per_kwh == pytest.approx(first_value)
    assert f"{rows} rows added" in message
    assert IntensityImport.objects.get().rows_created == rows


def test_watttime_lbs_per_mwh_are_converted_to_g_per_kwh_and_filed_under_the_zone_given(tmp_path):
    run_import(tmp_path, "caiso.json", fixture("watttime_historical_aoer_CAISO_NORTH.json"), "--zone", "US-CAL-CISO")
    row = IntensityRow.objects.get()
    # Twelve 5-minute points of 520…542 lbs/MWh: mean 531 lbs/MWh × 0.45359237 = 240.86 g/kWh.
    assert row.zone == "US-CAL-CISO"
    assert row.intensity_g_per_kwh == pytest.approx(531 * 0.45359237)
    assert (row.signal, row.basis) == ("average", "direct")


def test_electricitymaps_forecast_json_is_stored_as_forecast(tmp_path):
    body = {"zone": "DE", "forecast": [
        {"carbonIntensity": 250, "datetime": "2026-01-02T00:00:00.000Z"},
        {"carbonIntensity": 240, "datetime": "2026-01-02T01:00:00.000Z"},
    ], "updatedAt": "2026-01-01T23:00:00.000Z"}
    run_import(tmp_path, "forecast.json", json.dumps(body))
    assert list(IntensityRow.objects.order_by("start_utc").values_list("intensity_g_per_kwh", "is_forecast")) == [
        (250.0, True), (240.0, True)]


def test_both_intensities_of_an_electricitymaps_csv_can_be_imported_side_by_side(tmp_path):
    run_import(tmp_path, "FR_2023_daily.csv", fixture("FR_2023_daily.csv"))
    run_import(tmp_path, "FR_2023_daily.csv", fixture("FR_2023_daily.csv"), "--basis", "direct")
    assert sorted(IntensityRow.objects.filter(start_utc__day=1).values_list("basis", "intensity_g_per_kwh")) == [
        ("direct", 14.22), ("lifecycle", 38.41)]


def test_codecarbon_runs_are_brought_over_with_both_figures(tmp_path):
    Project.objects.create(name="legacy")
    message = run_import(tmp_path, "emissions.csv", fixture("codecarbon_emissions.csv"), "--project", "legacy",
                         "--timezone", "Europe/Berlin")
    runs = {r.run_key: r for r in ImportedRun.objects.all()}
    assert len(runs) == 2 and "2 runs added" in message
    llama = runs["7f3c2a10-5b8e-4c1d-9a42-0e6f1d2b3c4d"]  # three cumulative rows folded into the last
    assert llama.energy_kwh == pytest.approx(2.00393)
    assert llama.codecarbon_emissions_g == pytest.approx(239.77)
    assert llama.where == "DEU"
    assert llama.ended_utc.isoformat() == "2025-03-04T09:02:47+00:00"  # 10:02:47 in Berlin
    # Ours: the same energy at the DE zone's 2025 yearly figure (no hourly data imported).
    assert llama.emissions_g == pytest.approx(2.00393 * 342.0)
    assert runs["c1d2e3f4-0a1b-4c5d-8e9f-123456789abc"].where == "gcp:europe-west1"


def test_a_codecarbon_file_needs_a_project(tmp_path):
    with pytest.raises(CommandError, match="choose the project"):
        run_import(tmp_path, "emissions.csv", fixture("codecarbon_emissions.csv"))
    assert ImportedRun.objects.count() == 0 and IntensityImport.objects.count() == 0


BROKEN = {
    "wrong header": ("zones.csv", "Datetime (UTC),Zone,Intensity\n2026-01-01 00:00:00,DE,300\n",
                     "neither an Electricity Maps nor a CodeCarbon CSV header"),
    "missing zone column": ("DE_2026_hourly.csv",
                            "Datetime (UTC),Country,Carbon intensity gCO₂eq/kWh (Life cycle)\n2026-01-01 00:00:00,DE,300\n",
                            r"missing column\(s\) Zone id"),
    "bad units": ("DE_2026_hourly.csv",
                  EM_HEADER_NEW.replace("gCO₂eq/kWh (Life cycle)", "kgCO₂eq/MWh (Life cycle)") + "\n"
                  "2026-01-01 00:00:00,Germany,Germany,DE,300,350,50,40,x,false,\n",
                  "unexpected unit or basis"),
    "local time": ("DE_2026_hourly.csv", EM_HEADER_NEW.replace("Datetime (UTC)", "Datetime (CET)") + "\n"
                   "2026-01-01 00:00:00,Germany,Germany,DE,300,350,50,40,x,false,\n", "must be UTC"),
    "gap": ("DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310, 320]).replace("2026-01-01 01:00:00", "2026-01-01 05:00:00"),
            "gap in a series that must be continuous"),
    "conflicting duplicate": ("DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310]) +
                              em_hourly_csv("DE", T0 + timedelta(hours=1), [305], header="").lstrip("\n"),
                              "duplicate hour for DE"),
    # Files are read as a stream (constant memory): a zone's rows must come in time order.
    "a row out of time order": ("DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310]) +
                                em_hourly_csv("DE", T0, [305], header="").lstrip("\n"),
                                "rows of DE are not in time order: line 4"),
    "negative value on the last line": ("DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310, -5]),
                                        "negative value"),
    "percentage above 100": ("SE_2026_hourly.csv", em_hourly_csv("SE", T0, [20, 21], renewable_pct=120),
                             "percentage above 100"),
    "watttime percentile": ("index.json", json.dumps({"meta": {"units": "percentile", "signal_type": "co2_moer",
                            "region": "CAISO_NORTH"}, "data": [{"point_time": "2026-01-01T00:00:00Z", "value": 40}]}),
                            "unsupported units"),
    "not utf-8": ("DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300]).encode("utf-16"), "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_file_is_refused_with_a_clear_error_and_changes_nothing(tmp_path, case):
    run_import(tmp_path, "SE-SE3_2024_hourly.csv", fixture("SE-SE3_2024_hourly.csv"))  # data already there
    before = snapshot()
    name, content, message = BROKEN[case]
    with pytest.raises(CommandError, match=message) as info:
        run_import(tmp_path, name, content)
    assert "nothing was imported" in str(info.value)
    assert snapshot() == before


def test_importing_the_same_file_twice_changes_nothing_the_second_time(tmp_path):
    Project.objects.create(name="legacy")
    run_import(tmp_path, "DE_2022_hourly.csv", fixture("DE_2022_hourly.csv"))
    run_import(tmp_path, "emissions.csv", fixture("codecarbon_emissions.csv"), "--project", "legacy")
    before = snapshot()
    again = run_import(tmp_path, "DE_2022_hourly.csv", fixture("DE_2022_hourly.csv"))
    run_import(tmp_path, "emissions.csv", fixture("codecarbon_emissions.csv"), "--project", "legacy")
    assert snapshot() == before
    assert "nothing new" in again


def test_a_corrected_file_updates_the_changed_rows_only(tmp_path):
    run_import(tmp_path, "DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 310, 320]))
    message = run_import(tmp_path, "DE_2026_hourly.csv", em_hourly_csv("DE", T0, [300, 315, 320]))
    assert "0 rows added, 1 updated, 2 unchanged" in message
    assert IntensityRow.objects.get(start_utc__hour=1).intensity_g_per_kwh == 315.0


def test_the_old_header_generation_and_a_zone_override_file_rows_under_the_site_zone(tmp_path):
    run_import(tmp_path, "x_2026_hourly.csv", em_hourly_csv("XX", T0, [100, 110], header=EM_HEADER_OLD),
               "--zone", "aws:eu-north-1")
    assert set(IntensityRow.objects.values_list("zone", flat=True)) == {"SE-SE3"}


def test_an_unreadable_path_is_a_clear_error(tmp_path):
    with pytest.raises(CommandError, match="cannot read"):
        call_command("import_intensity", str(tmp_path / "missing.csv"))
