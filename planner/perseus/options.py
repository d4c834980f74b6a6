"""Execution options: which frequencies are worth running an instruction at, and at what cost.

Each (stage, instruction) can run at any profiled frequency; each frequency is an *execution
option* with a time and an energy. Before planning, the options are cleaned:

1. **Pareto filter.** An option is dropped when another option is both faster and cheaper: no plan
   would ever pick it.
2. **Time quantisation.** The planner works in integer multiples of a time unit τ
   (``unit_time_s``, e.g. 1 ms): an option's *quantised time* is its time in units of τ.
3. **Deduplication.** Of several options with the same quantised time only one is kept.
4. **Effective energy.** A GPU that is not computing still draws P_blocking (waiting on
   point-to-point communication or in a pipeline bubble). Over an iteration of length T on S
   stages, ``E = Σ e_i + P_blocking·(S·T − Σ t_i) = Σ (e_i − P_blocking·t_i) + S·T·P_blocking``.
   For a fixed T only the first sum can change, so each option's *cost* is its effective energy
   ``e − P_blocking·t``: what running the computation costs on top of idling.

Two procedures are provided:

``lowtime`` (compatibility)
    Exactly what the Perseus SOSP'24 artifact (``lowtime/scripts/perseus.py`` with lowtime 0.3.0)
    does: Pareto filter on raw (time, energy) with lowtime's strict comparison; if three options or
    fewer survive, redo it with a 5 % noise factor; quantise with ``floor(time / τ)``; keep the
    option with the largest energy per quantised time; then subtract ``P_blocking·q·τ``.

``default``
    Filter on *effective* energy (a slower option whose raw energy is a little higher can still
    be the better choice, because the GPU would otherwise idle at P_blocking), quantise with
    ``ceil(time / τ)`` so a planned duration is never shorter than the profiled time, and keep the
    cheapest option per quantised time. The cost is ``e − P_blocking·t`` with the *profiled* time
    t: an option that finishes early inside its quantised slot blocks for the rest of it, so the
    slot costs ``e + P_blocking·(q·τ − t)``, and the iteration energy is exactly
    ``Σ (e_i − P_blocking·t_i) + S·T·P_blocking`` for any iteration time T the plan fits in. No
    noise-factor fallback is needed because the default cost model
    (:mod:`~planner.perseus.cost_model`) fits any number of options.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from enum import StrEnum

from planner.perseus.errors import PlannerError
from planner.perseus.profile import InstructionProfile

LOWTIME_NOISE_FACTOR = 0.95
"""Noise factor the artifact retries the Pareto filter with when three options or fewer survive."""


class Mode(StrEnum):
    """Which semantics the planner follows (see the module docstrings and docs/planner.md)."""

    DEFAULT = "default"
    LOWTIME = "lowtime"


@dataclass(frozen=True)
class CandidateOptions:
    """The cleaned execution options of one (stage, instruction), slowest first.

    All tuples have one entry per option, sorted by ``quant_time`` in strictly descending order.
    """

    stage: int
    instruction: str
    unit_time_s: float
    quant_time: tuple[int, ...]
    freq_mhz: tuple[int, ...]
    time_s: tuple[float, ...]
    energy_j: tuple[float, ...]
    cost_j: tuple[float, ...]
    """Effective energy of each option (what the cost model fits): ``energy − P_blocking·q·τ`` in
    ``lowtime`` mode, ``energy − P_blocking·time`` in ``default`` mode."""
    noise_factor: float = 1.0

    @property
    def min_duration(self) -> int:
        """Quantised time of the fastest option."""
        return self.quant_time[-1]

    @property
    def max_duration(self) -> int:
        """Quantised time of the slowest option."""
        return self.quant_time[0]

    def option_for(self, duration: int) -> int:
        """Index of the slowest option whose quantised time fits in ``duration``.

        A duration shorter than every option gets the fastest option (lowtime's ``get_knob_for``).
        """
        ascending = self.quant_time[::-1]
        i = bisect.bisect_right(ascending, duration)
        i = max(1, i)
        return len(self.quant_time) - i


def _quantise_floor(time_s: float, unit_time_s: float) -> int:
    """lowtime's quantisation: ``int(real_time // unit_time)``."""
    return int(time_s // unit_time_s)


def _quantise_ceil(time_s: float, unit_time_s: float) -> int:
    """Round up to whole units, treating times within 1e-9 of a unit boundary as on it."""
    ratio = time_s / unit_time_s
    nearest = round(ratio)
    if abs(ratio - nearest) <= 1e-9 * max(1.0, abs(ratio)):
        return max(1, int(nearest))
    return max(1, math.ceil(ratio))


@dataclass
class _Option:
    freq_mhz: int
    time_s: float
    energy_j: float
    cost: float
    quant_time: int


def _lowtime_candidates(options: list[_Option], noise_factor: float) -> list[_Option]:
    """lowtime 0.3.0 ``CandidateExecutionOptions.__attrs_post_init__``, tie-breaks included."""
    by_time = sorted(options, key=lambda o: o.time_s, reverse=True)
    filtered: list[_Option] = []
    for option in by_time:
        real_time = option.time_s * noise_factor
        cost = option.cost * noise_factor
        if any(other.time_s < real_time and other.cost < cost for other in by_time):
            continue
        filtered.append(option)
    filtered.sort(key=lambda o: o.cost, reverse=True)
    deduped: list[_Option] = []
    seen: set[int] = set()
    for option in filtered:
        if option.quant_time in seen:
            continue
        deduped.append(option)
        seen.add(option.quant_time)
    deduped.sort(key=lambda o: o.quant_time, reverse=True)
    return deduped


def lowtime_options(entry: InstructionProfile, unit_time_s: float, p_blocking_w: float) -> CandidateOptions:
    """Clean one instruction's options the way the Perseus artifact does (see module docstring)."""
    raw = [
        _Option(f, t, e, e, _quantise_floor(t, unit_time_s))
        for f, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True)
    ]
    noise_factor = 1.0
    kept = _lowtime_candidates(raw, noise_factor)
    if len(kept) <= 3:
        noise_factor = LOWTIME_NOISE_FACTOR
        kept = _lowtime_candidates(raw, noise_factor)
    for option in kept:
        # Same operation order as the artifact: cost -= p * quant_time * unit_time.
        option.cost -= p_blocking_w * option.quant_time * unit_time_s
    return _to_candidates(entry, unit_time_s, kept, noise_factor)


def default_options(entry: InstructionProfile, unit_time_s: float, p_blocking_w: float) -> CandidateOptions:
    """Clean one instruction's options the default way (see module docstring)."""
    raw = [
        _Option(f, t, e, e - p_blocking_w * t, _quantise_ceil(t, unit_time_s))
        for f, t, e in zip(entry.freq_mhz, entry.time_s, entry.energy_j, strict=True)
    ]
    # Pareto filter on (time, effective energy): drop an option if another is no slower and
    # no costlier, and strictly better in one of them (exact duplicates keep the first).
    pareto: list[_Option] = []
    for i, option in enumerate(raw):
        dominated = False
        for j, other in enumerate(raw):
            if i == j:
                continue
            no_worse = other.time_s <= option.time_s and other.cost <= option.cost
            better = other.time_s < option.time_s or other.cost < option.cost
            if (no_worse and better) or (other.time_s == option.time_s and other.cost == option.cost and j < i):
                dominated = True
                break
        if not dominated:
            pareto.append(option)
    # Per quantised time keep the cheapest; its time still fits in the quantised duration.
    best: dict[int, _Option] = {}
    for option in pareto:
        current = best.get(option.quant_time)
        if current is None or option.cost < current.cost:
            best[option.quant_time] = option
    kept = sorted(best.values(), key=lambda o: o.quant_time, reverse=True)
    return _to_candidates(entry, unit_time_s, kept, 1.0)


def _to_candidates(
    entry: InstructionProfile, unit_time_s: float, kept: list[_Option], noise_factor: float
) -> CandidateOptions:
    if not kept:  # pragma: no cover - a non-empty profile always keeps its fastest option
        raise PlannerError(f"stage {entry.stage} {entry.instruction}: no execution option left")
    return CandidateOptions(
        stage=entry.stage,
        instruction=entry.instruction,
        unit_time_s=unit_time_s,
        quant_time=tuple(o.quant_time for o in kept),
        freq_mhz=tuple(o.freq_mhz for o in kept),
        time_s=tuple(o.time_s for o in kept),
        energy_j=tuple(o.energy_j for o in kept),
        cost_j=tuple(o.cost for o in kept),
        noise_factor=noise_factor,
    )


def clean_options(
    entry: InstructionProfile, unit_time_s: float, p_blocking_w: float, mode: Mode
) -> CandidateOptions:
    """Clean one instruction's options in the given mode."""
    if mode is Mode.LOWTIME:
        return lowtime_options(entry, unit_time_s, p_blocking_w)
    return default_options(entry, unit_time_s, p_blocking_w)
