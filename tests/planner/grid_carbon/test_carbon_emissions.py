"""Emissions of a run, per UTC hour, location-based and market-based — checked against hand arithmetic."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from planner.grid_carbon import (
    EmissionFactor,
    EmissionsReport,
    EnergyAttributeCertificate,
    HourlyTable,
    IntensityRecord,
    IntensityResolver,
    MarketInstruments,
    PowerPurchaseAgreement,
    compute_emissions,
)


def h(hour: int) -> datetime:
    return datetime(2024, 3, 5, hour, tzinfo=UTC)


def hourly(zone: str, hour: int, value: float, basis: str = "lifecycle") -> IntensityRecord:
    return IntensityRecord(zone, h(hour), "hour", value, basis, "test import")  # type: ignore[arg-type]


# 2 kWh, 1 kWh, 1.5 kWh and 0.5 kWh of GPU energy in four consecutive hours.
ENERGY_J = {h(10): 7_200_000.0, h(11): 3_600_000.0, h(12): 5_400_000.0, h(13): 1_800_000.0}
# Hourly data for 10:00, 11:00 and 13:00 only; 12:00 is missing.
TABLE = HourlyTable([hourly("DE", 10, 300.0), hourly("DE", 11, 250.0), hourly("DE", 13, 400.0)])
# Electricity Maps 2024 yearly figure for DE, read by hand from data/co2js/electricity-maps/yearly_2024.json.
DE_2024_YEARLY = 341.0


def run_report(instruments: MarketInstruments | None = None) -> EmissionsReport:
    return compute_emissions(
        ENERGY_J, where="DE", pue=1.2, resolver=IntensityResolver(TABLE), instruments=instruments
    )


def test_run_over_four_hours_with_pue_and_a_missing_hour_matches_hand_arithmetic() -> None:
    report = run_report()
    # facility kWh = kWh x 1.2: 2.4, 1.2, 1.8, 0.6
    assert [round(hour.facility_energy_kwh, 9) for hour in report.hours] == [2.4, 1.2, 1.8, 0.6]
    # 2.4 x 300 = 720; 1.2 x 250 = 300; 1.8 x 341 = 613.8; 0.6 x 400 = 240
    assert [round(hour.emissions_g, 6) for hour in report.hours] == [720.0, 300.0, 613.8, 240.0]
    assert report.location_emissions_g == pytest.approx(1873.8)
    assert report.energy_j == 18_000_000.0
    assert report.facility_energy_kwh == pytest.approx(6.0)
    assert report.mean_intensity_g_per_kwh == pytest.approx(1873.8 / 6.0)
    assert report.market is None


def test_missing_hour_falls_back_to_zone_yearly_and_says_so() -> None:
    report = run_report()
    missing = report.hours[2]
    assert missing.hour_utc == h(12)
    assert missing.fallback is True
    assert missing.step == "zone_yearly"
    assert missing.intensity_g_per_kwh == DE_2024_YEARLY
    assert missing.year == 2024
    assert missing.basis == "lifecycle"
    assert "no hourly data for DE at 2024-03-05T12:00Z" in missing.reason
    assert "used Electricity Maps 2024 yearly for DE" in missing.reason
    assert [hour.fallback for hour in report.hours] == [False, False, True, False]
    assert report.fallback_hours == 1
    assert report.steps == {"hourly": 3, "zone_yearly": 1}
    assert report.hours[0].source == "test import"


def test_certificates_then_residual_mix_give_the_market_based_figure_beside_location_based() -> None:
    certificates = (
        EnergyAttributeCertificate(3.0, vintage_year=2024, market_boundary="EU", retired=True, kind="GO"),
    )
    residual = EmissionFactor(600.0, "AIB European Residual Mix 2024 (example)", 2024)
    report = run_report(MarketInstruments(certificates=certificates, residual_mix=residual))
    assert report.market is not None
    # 6 kWh consumed, 3 kWh covered by GOs at 0 g/kWh, 3 kWh x 600 g/kWh residual mix = 1800 g.
    assert report.market.emissions_g == pytest.approx(1800.0)
    assert report.market.certificate_kwh == pytest.approx(3.0)
    assert report.market.uncovered_kwh == pytest.approx(3.0)
    assert report.market.uncovered_method == "residual_mix"
    # The location-based figure does not move.
    assert report.location_emissions_g == pytest.approx(1873.8)
    # Coverage is matched over the year and spread pro rata: half of every hour is covered.
    assert [round(hour.covered_kwh, 9) for hour in report.market.hours] == [1.2, 0.6, 0.9, 0.3]
    assert sum(hour.emissions_g for hour in report.market.hours) == pytest.approx(1800.0)


def test_ppa_share_and_supplier_factor_cover_the_rest() -> None:
    ppa = PowerPurchaseAgreement(
        vintage_year=2024, market_boundary="DE", certificates_retained=True, share_pct=25.0
    )
    supplier = EmissionFactor(200.0, "supplier disclosure 2024 (example)", 2024)
    report = run_report(MarketInstruments(ppas=(ppa,), supplier_factor=supplier))
    assert report.market is not None
    # 25 % of 6 kWh = 1.5 kWh from the PPA at 0 g; 4.5 kWh x 200 g/kWh = 900 g.
    assert report.market.ppa_kwh == pytest.approx(1.5)
    assert report.market.emissions_g == pytest.approx(900.0)
    assert report.market.uncovered_method == "supplier"


def test_instruments_failing_quality_criteria_are_excluded_with_reasons() -> None:
    instruments = MarketInstruments(
        certificates=(
            EnergyAttributeCertificate(
                1.0, vintage_year=2024, market_boundary="EU", retired=False, kind="GO", label="A"
            ),
            EnergyAttributeCertificate(
                1.0, vintage_year=2023, market_boundary="EU", retired=True, kind="GO", label="B"
            ),
            EnergyAttributeCertificate(
                1.0, vintage_year=2024, market_boundary="US", retired=True, kind="REC", label="C"
            ),
        ),
        ppas=(
            PowerPurchaseAgreement(
                vintage_year=2024, market_boundary="EU", certificates_retained=False, share_pct=50.0
            ),
        ),
        residual_mix=EmissionFactor(600.0, "example residual mix", 2024),
    )
    report = run_report(instruments)
    assert report.market is not None
    assert report.market.certificate_kwh == 0.0
    assert report.market.emissions_g == pytest.approx(6.0 * 600.0)
    excluded = " | ".join(report.market.excluded)
    assert "GO A: not retired" in excluded
    assert "vintage 2023 does not match the consumption year(s) [2024]" in excluded
    assert "REC C: market boundary US does not contain the consumption location" in excluded
    assert "certificates were not retained" in excluded


def test_without_residual_mix_uncovered_energy_uses_location_factors_and_is_flagged() -> None:
    certificates = (
        EnergyAttributeCertificate.from_mwh(0.003, vintage_year=2024, market_boundary="EU", retired=True),
    )
    report = run_report(MarketInstruments(certificates=certificates))
    assert report.market is not None
    # Half of each hour uncovered at its location intensity: 1.2x300 + 0.6x250 + 0.9x341 + 0.3x400 = 936.9
    assert report.market.emissions_g == pytest.approx(936.9)
    assert report.market.uncovered_method == "location_fallback"
    assert any("last step of the GHG Protocol hierarchy" in note for note in report.market.notes)


def test_surplus_certificates_are_reported_not_carried() -> None:
    certificates = (EnergyAttributeCertificate(10.0, vintage_year=2024, market_boundary="DE", retired=True),)
    report = run_report(MarketInstruments(certificates=certificates))
    assert report.market is not None
    assert report.market.emissions_g == 0.0
    assert report.market.unused_certificate_kwh == pytest.approx(4.0)
    assert report.market.uncovered_method == "none"


def test_mixing_direct_hourly_values_with_lifecycle_yearly_figures_is_flagged() -> None:
    table = HourlyTable([hourly("GB", 10, 120.0, basis="direct")])
    report = compute_emissions(
        {h(10): 3_600_000.0, h(11): 3_600_000.0}, where="GB", resolver=IntensityResolver(table)
    )
    assert report.bases == {"direct", "lifecycle"}
    assert report.mixed_basis is True


def test_pue_below_one_is_rejected() -> None:
    with pytest.raises(ValueError, match="PUE"):
        compute_emissions(ENERGY_J, where="DE", pue=0.9)


def test_negative_or_nan_energy_is_rejected() -> None:
    with pytest.raises(ValueError, match="energy_j"):
        compute_emissions({h(10): -1.0}, where="DE")
    with pytest.raises(ValueError, match="energy_j"):
        compute_emissions({h(10): float("nan")}, where="DE")


def test_hours_must_be_aware_utc_hour_starts() -> None:
    with pytest.raises(ValueError, match="no timezone"):
        compute_emissions({datetime(2024, 3, 5, 10): 1.0}, where="DE")
    with pytest.raises(ValueError, match="not the start of a UTC hour"):
        compute_emissions({datetime(2024, 3, 5, 10, 30, tzinfo=UTC): 1.0}, where="DE")


def test_a_cloud_region_uses_its_grid_zone() -> None:
    report = compute_emissions({h(10): 3_600_000.0}, where="aws:eu-north-1", pue=1.0)
    assert report.where == "aws:eu-north-1"
    assert report.zone == "SE-SE3"
    # Electricity Maps 2024 yearly for SE-SE3 is 21 g/kWh (data/co2js/electricity-maps/yearly_2024.json).
    assert report.location_emissions_g == pytest.approx(21.0)
