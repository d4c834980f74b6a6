"""The compare page's units of work: the runs ranked by energy per unit (per token where any run reports
tokens, else per sample, else per step) and the runs grouped by tag, so two training methods (a
``fine-tune`` family against a ``from-scratch`` one) are compared on equal terms."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dashboard.runs.compare import RunTotals
from dashboard.telemetry.work import UNITS, Family, families


@dataclass(frozen=True)
class Ranked:
    place: int | None  # 1 for the least energy per unit; None for runs without the unit
    totals: RunTotals
    energy_per_unit_j: float | None
    emissions_per_unit_g: float | None


def ranking_unit(totals: Sequence[RunTotals]) -> str | None:
    """The finest unit any compared run reports (tokens, samples, steps), or None."""
    return next((u for u in UNITS if any(t.work.get(u) for t in totals)), None)


def ranked(totals: Sequence[RunTotals], unit: str) -> list[Ranked]:
    """Least energy per ``unit`` first; runs without the unit after them, in the page's order."""
    having = sorted((t for t in totals if t.j_per(unit) is not None), key=lambda t: t.j_per(unit) or 0.0)
    rows = [Ranked(i + 1, t, t.j_per(unit), t.g_per(unit)) for i, t in enumerate(having)]
    return rows + [Ranked(None, t, None, None) for t in totals if t.j_per(unit) is None]


def tag_families(totals: Sequence[RunTotals]) -> list[Family]:
    """The compared runs grouped by tag (a run is in each of its tags' families)."""
    return families([([tag.name for tag in t.run.tags.all()], t.energy_j, t.emissions_g, t.work) for t in totals])
