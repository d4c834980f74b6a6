"""The run page's power limit section: what the agent's power-limit optimiser (``wattwise_agent.power_limit``,
in the style of Zeus' global power-limit optimiser) tried and chose, from the ``power_limit`` markers it sends.

It sends, on every rank, ``phase="trial"`` with ``limit_w`` and ``dry_run`` for each limit it tries, then one
``phase="chosen"`` with ``limit_w``, ``max_limit_w``, ``eta``, ``energy_saving_pct`` and ``time_change_pct``
(measured per step against the highest limit) and ``dry_run``. Every rank decides on the same (summed)
figures, so the ranks' choices agree; a run whose ranks disagree shows each choice.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dashboard.telemetry.models import Run, RunEvent

POWER_LIMIT = "power_limit"
MAX_EVENTS = 10_000


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


@dataclass(frozen=True)
class Choice:
    limit_w: float
    max_limit_w: float | None
    eta: float | None
    energy_saving_pct: float | None  # per step, against the highest limit: positive saves
    time_change_pct: float | None  # per step: positive is slower
    dry_run: bool

    @property
    def energy_saving_fraction(self) -> float | None:
        return None if self.energy_saving_pct is None else self.energy_saving_pct / 100

    @property
    def time_change_fraction(self) -> float | None:
        return None if self.time_change_pct is None else self.time_change_pct / 100


@dataclass(frozen=True)
class PowerLimits:
    """What the optimiser did in one run: the limits it tried (highest first), and its choices with the nodes
    that reported each."""

    tried_w: tuple[float, ...]
    choices: tuple[tuple[Choice, tuple[str, ...]], ...]
    dry_run: bool

    @property
    def choice(self) -> Choice | None:
        """The choice, when every rank reported the same one."""
        return self.choices[0][0] if len(self.choices) == 1 else None


def summarise(events: Iterable[tuple[str, Mapping[str, Any]]]) -> PowerLimits | None:
    """The optimiser's trials and choices from ``(node name, data)`` of its markers in order; None without any."""
    tried: set[float] = set()
    choices: dict[Choice, list[str]] = {}
    dry_run, seen = False, False
    for node, data in events:
        limit_w = _number(data.get("limit_w"))
        if limit_w is None:
            continue
        seen = True
        dry_run = dry_run or bool(data.get("dry_run"))
        if data.get("phase") == "trial":
            tried.add(limit_w)
        elif data.get("phase") == "chosen":
            choice = Choice(limit_w, _number(data.get("max_limit_w")), _number(data.get("eta")),
                            _number(data.get("energy_saving_pct")), _number(data.get("time_change_pct")),
                            bool(data.get("dry_run")))
            nodes = choices.setdefault(choice, [])
            if node not in nodes:
                nodes.append(node)
    if not seen:
        return None
    return PowerLimits(tuple(sorted(tried, reverse=True)), tuple((c, tuple(n)) for c, n in choices.items()), dry_run)


def run_power_limits(run: Run) -> PowerLimits | None:
    rows = (RunEvent.objects.filter(run=run, kind=POWER_LIMIT).order_by("t_ms", "pk")
            .values_list("node__name", "data")[:MAX_EVENTS])
    return summarise((node, data if isinstance(data, dict) else {}) for node, data in rows)
