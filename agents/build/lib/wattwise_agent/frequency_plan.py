"""Per-rank frequency plans: reading and validating the JSON the planner writes.

One rank's plan is the Zeus ``FrequencySchedule``: one training iteration's computations of pipeline
stage ``rank``, in execution order, each with the SM clock to run it at::

    {"rank": 0, "frequencies": [["forward", 1410], ["forward", 1395], ["backward", 1410], ...]}

A file may hold one rank's plan, a list of them, or the planner's whole output
(``{"summary": ..., "ranks": [...]}`` from ``python -m planner plan``, or ``Plan.to_json()``). Every
problem raises :class:`PlanError` naming where in the file it is.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union

INSTRUCTIONS = ("forward", "backward")
MAX_PLAN_BYTES = 16 * 1024 * 1024
MAX_INSTRUCTIONS_PER_RANK = 200_000
MAX_FREQ_MHZ = 10_000

PlanSource = Union[str, bytes, "os.PathLike[str]", Mapping[str, Any], Sequence[Any]]


class PlanError(ValueError):
    """A plan file that cannot be used; the text says where and why."""


@dataclass(frozen=True)
class RankPlan:
    """One rank's plan: ``(instruction, freq_mhz)`` per computation of one iteration, in order."""

    rank: int
    frequencies: tuple[tuple[str, int], ...]

    def __len__(self) -> int:
        return len(self.frequencies)

    @property
    def frequencies_mhz(self) -> list[int]:
        """The distinct clocks used, highest first."""
        return sorted({f for _, f in self.frequencies}, reverse=True)

    def changes_per_iteration(self) -> int:
        """How many times the clock changes in one iteration, counting the wrap to the next one."""
        freqs = [f for _, f in self.frequencies]
        return sum(a != b for a, b in zip(freqs, freqs[1:] + freqs[:1])) if len(set(freqs)) > 1 else 0

    def summary(self) -> dict[str, Any]:
        counts = Counter(name for name, _ in self.frequencies)
        freqs = self.frequencies_mhz
        return {
            "rank": self.rank,
            "instructions_per_iteration": len(self.frequencies),
            "by_instruction": {name: counts[name] for name in INSTRUCTIONS},
            "frequencies_mhz": freqs,
            "min_mhz": freqs[-1],
            "max_mhz": freqs[0],
            "clock_changes_per_iteration": self.changes_per_iteration(),
        }

    def to_json(self) -> dict[str, Any]:
        return {"rank": self.rank, "frequencies": [[name, freq] for name, freq in self.frequencies]}


def load_plans(source: PlanSource) -> list[RankPlan]:
    """Every rank's plan in ``source``: a path, JSON text or bytes, or parsed JSON."""
    if isinstance(source, os.PathLike) or (isinstance(source, str) and not source.lstrip().startswith(("{", "["))):
        path = Path(source)
        try:
            size = path.stat().st_size
            if size > MAX_PLAN_BYTES:
                raise PlanError(f"{path}: {size} bytes, the limit is {MAX_PLAN_BYTES}")
            data: Any = path.read_bytes()
        except OSError as exc:
            raise PlanError(f"cannot read plan file {str(path)!r}: {exc.strerror}") from None
        return parse_plans(data)
    return parse_plans(source)


def load_rank_plan(source: PlanSource | RankPlan, rank: int | None = None) -> RankPlan:
    """The plan of ``rank`` (may be omitted when the source holds one rank only)."""
    if isinstance(source, RankPlan):
        if rank is not None and rank != source.rank:
            raise PlanError(f"the plan is for rank {source.rank}, not rank {rank}")
        return source
    return select_rank(load_plans(source), rank)


def select_rank(plans: Sequence[RankPlan], rank: int | None) -> RankPlan:
    if rank is None:
        if len(plans) != 1:
            raise PlanError(f"the plan has {len(plans)} ranks ({_ranks(plans)}): say which one (rank=, --rank)")
        return plans[0]
    for plan in plans:
        if plan.rank == rank:
            return plan
    raise PlanError(f"the plan has no rank {rank} (it has {_ranks(plans)})")


def _ranks(plans: Sequence[RankPlan]) -> str:
    ranks = sorted(p.rank for p in plans)
    return f"ranks {ranks[0]}–{ranks[-1]}" if len(ranks) > 1 else f"rank {ranks[0]}"


def parse_plans(data: str | bytes | Mapping[str, Any] | Sequence[Any]) -> list[RankPlan]:
    """Validate a plan given as JSON text/bytes or parsed JSON; return its ranks' plans."""
    if isinstance(data, (str, bytes)):
        if len(data) > MAX_PLAN_BYTES:
            raise PlanError(f"the plan is {len(data)} bytes, the limit is {MAX_PLAN_BYTES}")
        try:
            data = json.loads(data, parse_constant=_reject_constant)
        except UnicodeDecodeError:
            raise PlanError("the plan is not UTF-8 text") from None
        except ValueError as exc:
            raise PlanError(f"the plan is not valid JSON: {exc}") from None
    if isinstance(data, Mapping) and "ranks" in data:
        items, where = data["ranks"], "ranks"
        if not isinstance(items, list):
            raise PlanError('"ranks": expected a list of {"rank": r, "frequencies": [...]} objects')
    elif isinstance(data, Mapping):
        items, where = [data], ""
    elif isinstance(data, list):
        items, where = data, ""
    else:
        raise PlanError('expected {"rank": r, "frequencies": [["forward", MHz], ...]}, a list of them, '
                        'or the planner\'s output with "ranks"')
    if not items:
        raise PlanError("the plan has no ranks")
    plans = []
    seen: dict[int, str] = {}
    for position, item in enumerate(items):
        label = f"{where}[{position}]" if where or isinstance(data, list) else ""
        plan = _parse_rank(item, label)
        if plan.rank in seen:
            raise PlanError(f"{label}: rank {plan.rank} appears twice (also {seen[plan.rank]})")
        seen[plan.rank] = label
        plans.append(plan)
    return plans


def _parse_rank(item: Any, label: str) -> RankPlan:
    prefix = f"{label}." if label else ""
    if not isinstance(item, Mapping):
        raise PlanError(f"{label or 'plan'}: expected an object {{\"rank\": r, \"frequencies\": [...]}}")
    rank = item.get("rank")
    if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
        raise PlanError(f"{prefix}rank: expected a pipeline rank (an integer, 0 or more), got {rank!r}")
    raw = item.get("frequencies")
    if not isinstance(raw, list) or not raw:
        raise PlanError(f"{prefix}frequencies: expected a non-empty list of [instruction, MHz] pairs")
    if len(raw) > MAX_INSTRUCTIONS_PER_RANK:
        raise PlanError(f"{prefix}frequencies: {len(raw)} entries, the limit is {MAX_INSTRUCTIONS_PER_RANK}")
    entries = []
    for index, entry in enumerate(raw):
        where = f"{prefix}frequencies[{index}]"
        if not isinstance(entry, (list, tuple)) or len(entry) != 2:
            raise PlanError(f'{where}: expected ["forward" or "backward", MHz], got {entry!r}')
        name, freq = entry
        if name not in INSTRUCTIONS:
            raise PlanError(f"{where}: unknown instruction {name!r}; expected one of {', '.join(INSTRUCTIONS)}")
        if isinstance(freq, bool) or not isinstance(freq, int) or not 0 < freq <= MAX_FREQ_MHZ:
            raise PlanError(f"{where}: frequency must be a whole number of MHz in 1..{MAX_FREQ_MHZ}, got {freq!r}")
        entries.append((name, freq))
    counts = Counter(name for name, _ in entries)
    if counts["forward"] != counts["backward"]:
        raise PlanError(f"{prefix}frequencies: {counts['forward']} forward but {counts['backward']} backward; every "
                        "microbatch of a stage runs one of each per iteration")
    return RankPlan(rank, tuple(entries))


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a valid number")
