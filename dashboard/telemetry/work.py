"""A run's units of work (steps, samples, tokens) and its energy and emissions per unit: the one place.

Agents report the run's totals with each session's ``close_run`` (``RunNode.work``), as the framework
callbacks and ``Tracker.add_work``/``set_work`` counted them. A framework's counts are global (every
process sees the run's step and token counts), so several sessions of one run report the same totals:
a unit's count is the **largest** any session reported, never their sum. A count entered on the run
page (``RunWork``) replaces what the agents reported for that unit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction

from dashboard.telemetry.models import Run, RunNode, RunWork
from dashboard.telemetry.signals import announce, run_changed

UNITS: tuple[str, ...] = ("tokens", "samples", "steps")  # the finest first: what "per unit" prefers
MAX_AMOUNT = 10**18  # as the wire's MAX_WORK


@dataclass(frozen=True)
class Work:
    """A run's counts by unit, and which of them were entered on its page rather than reported."""

    counts: Mapping[str, int] = field(default_factory=dict)
    entered: frozenset[str] = frozenset()

    def get(self, unit: str) -> int | None:
        return self.counts.get(unit) or None

    @property
    def finest(self) -> str | None:
        """The unit energy per unit is shown in by default: tokens, else samples, else steps."""
        return next((u for u in UNITS if self.get(u)), None)

    def per(self, unit: str | None, value: float | None) -> float | None:
        """``value`` (energy, emissions) per ``unit``; None without both."""
        count = self.get(unit) if unit else None
        return value / count if count and value is not None else None


@dataclass(frozen=True)
class PerUnit:
    """One unit a run has: its count, whether it was entered, and the run's energy and emissions per unit."""

    unit: str
    count: int
    entered: bool
    energy_j: float | None
    emissions_g: float | None  # None while the run's carbon figures are not current


def per_unit(work: Work, energy_j: float, emissions_g: float | None) -> list[PerUnit]:
    """Every unit ``work`` has, finest first."""
    return [PerUnit(u, n, u in work.entered, work.per(u, energy_j), work.per(u, emissions_g))
            for u in UNITS if (n := work.get(u))]


def runs_work(run_ids: Iterable[int]) -> dict[int, Work]:
    """Each run's work, by run id (a run without any has an empty ``Work``), in two queries."""
    ids = list(run_ids)
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    for run_id, reported in RunNode.objects.filter(run_id__in=ids).exclude(work={}).values_list("run_id", "work"):
        for unit, amount in reported.items():
            if unit in UNITS and isinstance(amount, int):
                counts[run_id][unit] = max(counts[run_id].get(unit, 0), amount)
    entered: dict[int, set[str]] = defaultdict(set)
    for run_id, unit, amount in RunWork.objects.filter(run_id__in=ids).values_list("run_id", "unit", "amount"):
        counts[run_id][unit] = amount
        entered[run_id].add(unit)
    return {i: Work(dict(counts[i]), frozenset(entered[i])) for i in ids}


class BadWork(ValueError):
    """Entered work that is not a count: says which unit and why."""


def parse_amounts(fields: Mapping[str, str]) -> dict[str, int | None]:
    """Counts entered on a form, by unit: a whole number, or blank for "no entered count" (what the agents
    reported counts again). Anything else is refused, naming the unit."""
    out: dict[str, int | None] = {}
    for unit in UNITS:
        text = (fields.get(unit) or "").strip().replace(",", "").replace("_", "")
        if not text:
            out[unit] = None
            continue
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_AMOUNT:
            raise BadWork(f"{unit}: expected a whole number from 1 to {MAX_AMOUNT:,}, got {text[:30]!r}")
        out[unit] = int(text)
    return out


def enter_work(run: Run, amounts: Mapping[str, int | None], user: Any) -> None:
    """Store what was entered for ``run``: a count replaces the agents' for its unit, a None clears an entry."""
    with transaction.atomic():
        for unit, amount in amounts.items():
            if amount is None:
                RunWork.objects.filter(run=run, unit=unit).delete()
            else:
                RunWork.objects.update_or_create(run=run, unit=unit, defaults={"amount": amount, "entered_by": user})
        announce(run_changed, run.pk)


@dataclass(frozen=True)
class Family:
    """Runs that share a tag, added up: energy and emissions per unit of the family's runs that have it."""

    tag: str
    runs: int
    energy_j: float
    emissions_g: float | None  # None when some run has no current figures
    counts: Mapping[str, int]  # over the runs that report the unit
    energy_j_with: Mapping[str, float]  # the energy of those runs, by unit
    emissions_g_with: Mapping[str, float | None]

    def energy_per(self, unit: str) -> float | None:
        count = self.counts.get(unit)
        return self.energy_j_with[unit] / count if count else None

    def emissions_per(self, unit: str) -> float | None:
        count, grams = self.counts.get(unit), self.emissions_g_with.get(unit)
        return grams / count if count and grams is not None else None


def families(rows: Sequence[tuple[Sequence[str], float, float | None, Work]]) -> list[Family]:
    """By tag, for ``(tags, energy_j, emissions_g or None, work)`` of each run: per unit, only the runs that
    report it count (their energy over their units), so a family's J/token is never diluted by runs without
    tokens. Tags in name order."""
    by_tag: dict[str, list[tuple[float, float | None, Work]]] = defaultdict(list)
    for tags, energy_j, emissions_g, work in rows:
        for tag in tags:
            by_tag[tag].append((energy_j, emissions_g, work))
    out = []
    for tag, members in sorted(by_tag.items()):
        counts: dict[str, int] = {}
        energy_with: dict[str, float] = {}
        emissions_with: dict[str, float | None] = {}
        for unit in UNITS:
            having = [(e, g, w.get(unit)) for e, g, w in members if w.get(unit)]
            if having:
                counts[unit] = sum(n for _, _, n in having if n)
                energy_with[unit] = sum(e for e, _, _ in having)
                emissions_with[unit] = None if any(g is None for _, g, _ in having) else sum(
                    g for _, g, _ in having if g is not None)
        grams = [g for _, g, _ in members]
        out.append(Family(tag, len(members), sum(e for e, _, _ in members),
                          None if any(g is None for g in grams) else sum(g for g in grams if g is not None),
                          counts, energy_with, emissions_with))
    return out
