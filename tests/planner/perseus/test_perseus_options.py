"""Option cleaning: Pareto filter, quantisation, deduplication, effective energy."""

from __future__ import annotations

import pytest

from planner.perseus import Profile
from planner.perseus.options import default_options, lowtime_options
from planner.perseus.profile import parse_profile

# The 1000 MHz forward is slower than 1100 MHz and costs more raw energy, but less effective
# energy once blocking at 200 W is counted.
PROFILE = parse_profile(
    """stage,instruction,frequency,time,energy
0,forward,1400,0.0500,30.0
0,forward,1300,0.0520,28.0
0,forward,1200,0.0525,27.9
0,forward,1100,0.0560,26.0
0,forward,1000,0.0600,26.5
0,backward,1400,0.1,60.0
0,backward,1300,0.11,55.0
0,backward,1200,0.12,52.0
0,backward,1100,0.13,50.0
0,backward,1000,0.15,51.0
"""
)


def test_lowtime_cleaning_filters_on_raw_energy_and_floors_like_lowtime() -> None:
    opts = lowtime_options(PROFILE.get(0, "forward"), 0.001, 100.0)
    # 1000 MHz is dominated on raw energy by 1100 MHz. Quantisation is lowtime's float floor
    # division, so 0.052 s is 51 units (0.052 // 0.001 == 51.0) and 0.0525 s is 52.
    assert opts.freq_mhz == (1100, 1200, 1300, 1400)
    assert opts.quant_time == (56, 52, 51, 50)
    assert opts.cost_j[0] == pytest.approx(26.0 - 100.0 * 56 * 0.001)
    assert opts.noise_factor == 1.0


def test_lowtime_cleaning_keeps_the_costlier_option_among_equal_quantised_times() -> None:
    opts = lowtime_options(PROFILE.get(0, "forward"), 0.003, 100.0)
    # At τ = 3 ms, 1300 MHz (0.052 s, 28.0 J) and 1200 MHz (0.0525 s, 27.9 J) both quantise to 17
    # units; lowtime keeps the one with the larger energy, 1300 MHz.
    assert 17 in opts.quant_time
    assert opts.freq_mhz[opts.quant_time.index(17)] == 1300


def test_lowtime_cleaning_retries_with_noise_factor_when_three_or_fewer_options_survive() -> None:
    profile = parse_profile(
        """stage,instruction,frequency,time,energy
0,forward,1400,0.050,30.0
0,forward,1300,0.052,28.0
0,forward,1200,0.054,28.5
0,forward,1100,0.056,26.0
0,backward,1400,0.1,60.0
0,backward,1300,0.11,55.0
0,backward,1200,0.12,52.0
0,backward,1100,0.13,50.0
"""
    )
    opts = lowtime_options(profile.get(0, "forward"), 0.001, 100.0)
    # Strictly, 1200 MHz is dominated by 1300 MHz and only three options remain; with the 5 %
    # noise factor it survives.
    assert opts.noise_factor == 0.95
    assert 1200 in opts.freq_mhz
    assert lowtime_options(profile.get(0, "backward"), 0.001, 100.0).noise_factor == 1.0


def test_default_cleaning_filters_on_effective_energy_and_rounds_up() -> None:
    opts = default_options(PROFILE.get(0, "forward"), 0.001, 100.0)
    assert opts.freq_mhz == (1100, 1200, 1300, 1400)
    assert opts.quant_time == (56, 53, 52, 50)
    # Cost is effective energy with the profiled time: e - P_blocking * t.
    assert opts.cost_j == pytest.approx((26.0 - 5.6, 27.9 - 5.25, 28.0 - 5.2, 30.0 - 5.0))


def test_default_cleaning_keeps_a_slow_option_that_only_effective_energy_favours() -> None:
    # 1000 MHz uses more raw energy than 1100 MHz but, at 200 W blocking, less effective energy.
    assert 1000 in default_options(PROFILE.get(0, "forward"), 0.001, 200.0).freq_mhz
    assert 1000 not in lowtime_options(PROFILE.get(0, "forward"), 0.001, 200.0).freq_mhz


def test_option_for_picks_the_slowest_option_that_fits() -> None:
    opts = lowtime_options(PROFILE.get(0, "forward"), 0.001, 100.0)
    assert opts.freq_mhz[opts.option_for(60)] == 1100
    assert opts.freq_mhz[opts.option_for(55)] == 1200
    assert opts.freq_mhz[opts.option_for(52)] == 1200
    assert opts.freq_mhz[opts.option_for(51)] == 1300
    assert opts.freq_mhz[opts.option_for(50)] == 1400
    assert opts.freq_mhz[opts.option_for(10)] == 1400  # shorter than anything: the fastest


def test_gpt3_lowtime_options_have_12_to_20_pareto_options(gpt3_profile: Profile) -> None:
    for (stage, instruction), entry in gpt3_profile.entries.items():
        opts = lowtime_options(entry, 0.001, 83.64)
        assert 12 <= len(opts.quant_time) <= 20, (stage, instruction)
        assert list(opts.quant_time) == sorted(opts.quant_time, reverse=True)
