"""When each frequency plan was in force in a run, from the plan client's ``plan`` events.

The plan client (``wattwise_agent.plan_client``) emits a ``plan`` event on every pipeline rank when a plan
comes into force: at the start, and at each switch (``reason`` ``straggler`` or ``recovered``). The ranks
of one pipeline switch within an iteration of each other, so consecutive events naming the same plan
(frontier, point, straggler time, reason) are one interval, whose ranks are the ranks that reported it;
it lasts until the next plan, or the run's last sample. Pure over the rows read here: one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dashboard.telemetry.models import RunEvent

PLAN_EVENT = "plan"
MAX_PLAN_EVENTS = 5000  # a run switching plans more often than this shows the first ones (and says so)


@dataclass
class PlanInterval:
    """One plan in force, from ``from_ms`` until ``to_ms`` (None: still, at the last sample)."""

    from_ms: int
    to_ms: int | None
    frontier_id: int | None  # None: a plan read from a file
    point: int | None
    reason: str
    straggler_time_s: float  # 0.0: no straggler
    predicted_time_s: float | None
    predicted_energy_j: float | None
    dry_run: bool
    ranks: list[int]

    @property
    def key(self) -> tuple[Any, ...]:
        return (self.frontier_id, self.point, self.straggler_time_s, self.reason)

    @property
    def label(self) -> str:
        plan = f"plan {self.point}" if self.point is not None else "plan from a file"
        straggler = f", T′ {self.straggler_time_s:.3g} s" if self.straggler_time_s else ""
        return f"{plan} ({self.reason}{straggler})"


def _number(data: dict[str, Any], name: str, kind: type) -> Any:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return kind(value)


def interval_of(t_ms: int, data: dict[str, Any]) -> PlanInterval:
    """A ``plan`` event's interval, open; fields the event lacks (or has of the wrong type) are None."""
    rank = _number(data, "rank", int)
    reason = data.get("reason")
    return PlanInterval(
        from_ms=t_ms, to_ms=None, frontier_id=_number(data, "frontier_id", int), point=_number(data, "point", int),
        reason=reason if isinstance(reason, str) else "",
        straggler_time_s=_number(data, "straggler_time_s", float) or 0.0,
        predicted_time_s=_number(data, "predicted_time_s", float),
        predicted_energy_j=_number(data, "predicted_energy_j", float),
        dry_run=bool(_number(data, "dry_run", int)), ranks=[] if rank is None else [rank],
    )


def merge(events: list[tuple[int, dict[str, Any]]]) -> list[PlanInterval]:
    """Intervals from ``(t_ms, data)`` plan events in time order (see the module text)."""
    intervals: list[PlanInterval] = []
    for t_ms, data in events:
        interval = interval_of(t_ms, data)
        current = intervals[-1] if intervals else None
        if current is not None and current.key == interval.key:
            current.ranks = sorted(set(current.ranks) | set(interval.ranks))
            continue
        if current is not None:
            current.to_ms = t_ms
        intervals.append(interval)
    return intervals


def plan_intervals(run_id: int) -> tuple[list[PlanInterval], bool]:
    """The run's plan intervals, and whether there were more events than were read."""
    rows = list(RunEvent.objects.filter(run_id=run_id, kind=PLAN_EVENT).order_by("t_ms", "pk")
                .values_list("t_ms", "data")[:MAX_PLAN_EVENTS + 1])
    return merge([(t, d if isinstance(d, dict) else {}) for t, d in rows[:MAX_PLAN_EVENTS]]), len(rows) > MAX_PLAN_EVENTS
