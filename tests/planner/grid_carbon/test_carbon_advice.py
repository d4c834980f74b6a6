"""Carbon-aware advice: where and when to run a planned job, under region preferences."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from planner.grid_carbon import Candidate, Constraints, IntensityRecord, PlannedRun, advise

START = datetime(2025, 6, 1, 12, tzinfo=UTC)


def history(
    zone: str, clean_hours: set[int], clean: float, dirty: float, days: int = 3
) -> list[IntensityRecord]:
    """Imported hourly history for the days before the window: clean at ``clean_hours`` (UTC), dirty otherwise."""
    first = datetime(2025, 5, 29, tzinfo=UTC)
    return [
        IntensityRecord(
            zone,
            first + timedelta(hours=i),
            "hour",
            clean if (first + timedelta(hours=i)).hour in clean_hours else dirty,
            "lifecycle",
            "EM CSV import",
        )
        for i in range(24 * days)
    ]


def planned(interruptible: bool, duration_h: float = 4.0) -> PlannedRun:
    return PlannedRun(
        energy_kwh=100.0,
        duration_h=duration_h,
        interruptible=interruptible,
        earliest_start_utc=START,
        latest_start_utc=START + timedelta(hours=20),
        current=Candidate("DE", pue=1.2),
    )


NIGHT = {0, 1, 2, 3, 4, 5}


def test_a_zone_with_cleaner_night_hours_moves_a_pausable_run_there() -> None:
    advice = advise(
        planned(interruptible=True),
        [Candidate("DE", pue=1.2), Candidate("GB", pue=1.1)],
        history=history("GB", NIGHT, clean=60.0, dirty=300.0),
    )
    best = advice.options[0]
    assert best.where == "GB"
    night = datetime(2025, 6, 2, tzinfo=UTC)
    assert best.hours_utc == tuple(night + timedelta(hours=i) for i in range(4))
    assert best.basis_used == "typical_profile"
    # 100 kWh over 4 h = 25 kWh/h; x PUE 1.1 x 60 g/kWh x 4 h = 6600 g
    assert best.predicted_emissions_g == pytest.approx(6600.0)
    # baseline: run now in DE, 100 kWh x PUE 1.2 x 342 g/kWh (Electricity Maps 2025 yearly for DE) = 41 040 g
    assert advice.baseline.predicted_emissions_g == pytest.approx(41040.0)
    assert advice.baseline.start_utc == START and advice.baseline.is_current_region
    assert best.saving_g == pytest.approx(34440.0)
    assert best.saving_pct == pytest.approx(100 * 34440 / 41040)
    de = advice.options[1]
    assert de.where == "DE" and de.is_current_region and de.saving_g == pytest.approx(0.0)
    assert de.basis_used == "yearly"


def test_a_non_interruptible_run_takes_the_best_contiguous_window() -> None:
    advice = advise(
        planned(interruptible=False),
        [Candidate("GB", pue=1.1)],
        history=history("GB", NIGHT, clean=60.0, dirty=300.0),
    )
    (option,) = advice.options
    assert option.start_utc == datetime(2025, 6, 2, 0, tzinfo=UTC)  # earliest of the equally clean windows
    assert option.predicted_emissions_g == pytest.approx(6600.0)
    assert len(option.per_start) == 21  # one prediction per allowed start hour
    assert option.per_start[0].emissions_g == pytest.approx(25 * 1.1 * 300 * 4)


def test_pausing_pays_off_when_the_clean_hours_are_split() -> None:
    split = history("GB", {1, 2, 13, 14}, clean=50.0, dirty=250.0)
    pausable = advise(planned(interruptible=True), [Candidate("GB")], history=split).options[0]
    contiguous = advise(planned(interruptible=False), [Candidate("GB")], history=split).options[0]
    assert pausable.predicted_emissions_g == pytest.approx(25 * 50 * 4)  # 13, 14, then 01, 02 next day
    assert contiguous.predicted_emissions_g == pytest.approx(25 * (50 + 50 + 250 + 250))
    assert [h.hour for h in pausable.hours_utc] == [13, 14, 1, 2]


def test_preferences_exclude_regions_over_the_threshold() -> None:
    advice = advise(
        planned(interruptible=False),
        [
            Candidate("aws:us-east-1"),
            Candidate("aws:eu-north-1"),
            Candidate("gcp:europe-west1"),
            Candidate("azure:uksouth"),
        ],
        Constraints(max_intensity_g_per_kwh=300, min_renewable_pct=50, residency_group="EU"),
    )
    assert [o.where for o in advice.options] == ["aws:eu-north-1"]
    reasons = {e.where: e.reason for e in advice.excluded}
    # Electricity Maps 2025 yearly: US-MIDA-PJM 418 g/kWh; BE renewable 38 %; UK is outside the EU.
    assert (
        reasons["aws:us-east-1"]
        == "aws:us-east-1: 418 g/kWh > max 300 (Electricity Maps 2025 yearly for US-MIDA-PJM)"
    )
    assert reasons["gcp:europe-west1"].startswith("gcp:europe-west1: renewable 38 % < min 50 %")
    assert reasons["azure:uksouth"] == "azure:uksouth: in GB, outside data-residency group EU"


def test_carbon_free_preference_uses_the_zone_figure() -> None:
    advice = advise(
        planned(interruptible=False), [Candidate("FR"), Candidate("PL")], Constraints(min_cfe_pct=90)
    )
    assert [o.where for o in advice.options] == ["FR"]
    assert advice.excluded[0].reason.startswith("PL: carbon-free")


def test_a_supplied_forecast_is_used_before_profiles_and_yearly_figures() -> None:
    forecast = [
        IntensityRecord(
            "SE-SE3", START + timedelta(hours=i), "hour", 5.0, "lifecycle", "EM forecast", is_forecast=True
        )
        for i in range(3)
    ]
    advice = advise(planned(interruptible=False), [Candidate("SE-SE3")], forecasts=forecast)
    option = advice.options[0]
    assert option.start_utc == START
    assert option.basis_used == "forecast+yearly"
    assert option.basis_detail == "forecast 3 h, yearly 1 h"
    # 25 kWh x (5 + 5 + 5 + 20) g/kWh; SE-SE3 2025 yearly = 20 g/kWh
    assert option.predicted_emissions_g == pytest.approx(25 * 35)


def test_with_only_yearly_figures_time_does_not_matter_and_advice_says_so() -> None:
    advice = advise(planned(interruptible=True), [Candidate("FR"), Candidate("DE")])
    assert [o.where for o in advice.options] == ["FR", "DE"]
    assert advice.options[0].start_utc == START
    assert any("only the choice of region" in note for note in advice.notes)


def test_unknown_candidates_are_listed_as_excluded() -> None:
    advice = advise(planned(interruptible=False), [Candidate("aws:moon-1"), Candidate("FR")])
    assert advice.excluded[0].where == "aws:moon-1" and "unknown cloud region" in advice.excluded[0].reason


def test_invalid_plans_are_rejected() -> None:
    run = planned(interruptible=False)
    with pytest.raises(ValueError, match="latest_start_utc is before"):
        advise(PlannedRun(1.0, 1.0, False, START, START - timedelta(hours=1), run.current), [])
    with pytest.raises(ValueError, match="duration_h"):
        advise(PlannedRun(1.0, 0.0, False, START, START, run.current), [])
