"""Dev check: compatibility mode equals real lowtime 0.3.0 on other inputs (skipped without lowtime).

lowtime is the ``bench`` extra (``pip install lowtime==0.3.0``). The reference fixtures cover one
profile at τ = 1 ms; these cases add synthetic A100- and A40-like profiles, other pipeline shapes,
noise levels and τ down to 0.1 ms. ``benchmarks/bench_planner.py --random N`` runs many more.
"""

from __future__ import annotations

import pytest

from benchmarks.bench_planner import Case, frontiers_equal, random_case, run_lowtime, run_ours
from planner.perseus.synthetic import synthetic_profile_csv

pytest.importorskip("lowtime.solver", reason="lowtime 0.3.0 (the bench extra) is not installed")


@pytest.mark.parametrize(
    "case",
    [
        Case("a40-3x2-tau0.1ms", synthetic_profile_csv(3, "a40", seed=3), 3, 2, 0.0001, 70.38),
        Case("a100-3x4-tau0.5ms-noisy", synthetic_profile_csv(3, "a100", seed=4, noise=0.01), 3, 4, 0.0005, 83.64),
        random_case(7),
        random_case(19),
    ],
    ids=lambda c: c.name,
)
def test_compat_mode_equals_lowtime_on_synthetic_profiles(case: Case) -> None:
    ours = run_ours(case)
    theirs = run_lowtime(case)
    equal, worst = frontiers_equal(ours, theirs)
    assert len(ours.quant_times) == len(theirs.quant_times)
    assert equal, f"largest relative energy difference {worst}"
