"""The loop's figures from a run's ``plan`` and ``iteration`` events, by the formulas the server uses
(``planner/plans/realised.py``, issue 12's contract); the loop reads them from the server's API and uses
these only where that endpoint is missing.

For one run: the steps every rank reported, less the first ``WARMUP_STEPS`` after each ``plan`` event;
time = mean over those steps of the slowest rank's ``time_s``; energy = sum over ranks of their mean
``energy_j``. Predicted saving P = 1 - predicted/baseline energy of the plan in force; realised saving
R = 1 - energy(planned)/energy(baseline run); time change T = time(planned)/time(baseline) - 1.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from typing import Any

WARMUP_STEPS = 2

Event = Mapping[str, Any]


def run_figures(events: Iterable[Event]) -> tuple[float, float]:
    """(time s, energy J) of one iteration of a run, from its events in the order they were recorded."""
    per_step: dict[int, dict[int, Event]] = defaultdict(dict)
    ranks: set[int] = set()
    skip: dict[int, int] = {}  # rank -> iterations still to skip after its last plan event
    for event in events:
        rank = int(event["rank"])
        if event["kind"] == "plan":
            skip[rank] = WARMUP_STEPS
            continue
        ranks.add(rank)
        if skip.get(rank, 0) > 0:
            skip[rank] -= 1
            continue
        per_step[int(event["step"])][rank] = event
    steps = [s for s, by_rank in per_step.items() if set(by_rank) == ranks]
    if not steps:
        raise ValueError("no iteration was reported by every rank after the warm-up")
    time_s = sum(max(float(e["time_s"]) for e in per_step[s].values()) for s in steps) / len(steps)
    energy_j = sum(sum(float(per_step[s][r]["energy_j"]) for s in steps) / len(steps) for r in ranks)
    return time_s, energy_j


def loop_figures(planned: list[Event], baseline: list[Event]) -> tuple[float, float, float]:
    """(P, R, T) as fractions: predicted saving, realised saving, iteration time change."""
    plans = [e for e in planned if e["kind"] == "plan"]
    if not plans:
        raise ValueError("the planned run reported no plan event")
    last = plans[-1]
    predicted = 1.0 - float(last["predicted_energy_j"]) / float(last["baseline_energy_j"])
    planned_s, planned_j = run_figures(planned)
    baseline_s, baseline_j = run_figures(baseline)
    return predicted, 1.0 - planned_j / baseline_j, planned_s / baseline_s - 1.0
