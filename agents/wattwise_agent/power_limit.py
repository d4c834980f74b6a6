"""Choose a GPU power limit for a data-parallel job during its first steps (as Zeus's global power-limit optimiser).

    from wattwise_agent.torch_hooks import Tracker

    with Tracker("resnet-dp", optimize_power_limit=True) as tracker:      # a dry run: nothing is set
        for step, batch in enumerate(loader):
            ...                                                          # forward, backward, optimizer step
            tracker.step(step)                                           # the optimiser's step boundary
    print(tracker.power_limit.choice)                                    # the limit and its measured saving

``optimize_power_limit={"allow_clock_changes": True, "eta": 0.3}`` passes keywords to
:class:`PowerLimitOptimizer`; the framework callbacks take the same keyword
(``WattwiseCallback(optimize_power_limit=True)``), since their keywords go to the Tracker.

What it does (ml-energy/zeus, ``zeus/optimizer/power_limit.py``): it tries each power limit the GPUs
accept, from the highest down in ``step_w`` steps (or the ``limits_w`` given), for ``warmup_steps``
discarded steps then ``profile_steps`` measured ones; a step is the time from one step marker to the next
and its energy is the GPUs' counter difference over it. Then it keeps the limit with the lowest cost
per step ``eta · energy + (1 − eta) · max_power · time`` (Zeus's cost: ``eta`` weighs energy against time,
``max_power`` is the highest limit times the GPUs measured, so both terms are joules), and reports the
choice and its measured saving against the highest limit (``choice``, a log line, and ``power_limit``
events in the run's stream).

The rule on clocks holds (:mod:`wattwise_agent.clock_guard`): without ``allow_clock_changes=True`` **and**
``WATTWISE_ALLOW_CLOCK_CHANGES=1`` it is a dry run: it walks the same steps, records the limits it would
have set and decides from what it measured, but sets nothing, so every trial ran at the unchanged
limit and the choice says so (``dry_run``). A limit it set is restored when it is closed (the Tracker
closes it), at exit and on SIGTERM.

In a data-parallel job every rank must keep the same limit: pass ``reduce`` (default, when
``torch.distributed`` is initialised: :func:`all_ranks_sum`) so that every trial's figures are summed over
the ranks, once per trial, and every rank decides on the same numbers.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.energy_meter import EnergyMeter, MeterReading
from wattwise_agent.power_guard import PowerLimitActuator

log = logging.getLogger(__name__)

DEFAULT_ETA = 0.5
DEFAULT_STEP_W = 25
POWER_LIMIT_EVENT = "power_limit"

Reduce = Callable[[Sequence[float]], Sequence[float]]


@dataclass(frozen=True)
class PowerLimitTrial:
    """What one power limit gave: means per measured step, over every GPU measured (every rank with ``reduce``)."""

    limit_w: int
    steps: int
    time_s: float  # per step
    energy_j: float  # per step

    def cost(self, eta: float, max_power_w: float) -> float:
        """Zeus's cost of one step at this limit, in J."""
        return eta * self.energy_j + (1 - eta) * max_power_w * self.time_s


@dataclass(frozen=True)
class PowerLimitChoice:
    """The limit kept, the trials it was chosen from, and its saving against the highest limit tried."""

    limit_w: int
    max_limit_w: int
    eta: float
    max_power_w: float  # the highest limit × GPUs measured
    trials: tuple[PowerLimitTrial, ...]  # highest limit first
    dry_run: bool

    @property
    def chosen(self) -> PowerLimitTrial:
        return next(t for t in self.trials if t.limit_w == self.limit_w)

    @property
    def at_max(self) -> PowerLimitTrial:
        return self.trials[0]

    @property
    def energy_saving_pct(self) -> float:
        """Energy per step saved against the highest limit, in % (negative: it costs more)."""
        return (self.at_max.energy_j - self.chosen.energy_j) / self.at_max.energy_j * 100

    @property
    def time_change_pct(self) -> float:
        """Step time against the highest limit, in % (positive: slower)."""
        return (self.chosen.time_s - self.at_max.time_s) / self.at_max.time_s * 100

    def summary(self) -> str:
        dry = " (dry run: every trial ran at the unchanged limit, none was set)" if self.dry_run else ""
        return (f"power limit {self.limit_w} W of {len(self.trials)} tried (eta {self.eta:g}): energy per step "
                f"{-self.energy_saving_pct:+.1f} %, step time {self.time_change_pct:+.1f} % against "
                f"{self.max_limit_w} W{dry}")

    def event_fields(self) -> dict[str, str | int | float]:
        return {"phase": "chosen", "limit_w": self.limit_w, "max_limit_w": self.max_limit_w, "eta": self.eta,
                "energy_saving_pct": round(self.energy_saving_pct, 3),
                "time_change_pct": round(self.time_change_pct, 3), "dry_run": int(self.dry_run)}


def limits_to_try(range_w: tuple[int, int], step_w: int) -> list[int]:
    """The highest limit, then every ``step_w`` below it down to the lowest (Zeus's order)."""
    low, high = range_w
    return list(range(high, low - 1, -step_w))


def all_ranks_sum(values: Sequence[float]) -> Sequence[float]:
    """Sum ``values`` over the ranks of the default ``torch.distributed`` group (every rank must call it)."""
    import torch
    import torch.distributed as dist

    tensor = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(tensor)
    return [float(v) for v in tensor.tolist()]


def default_reduce() -> Reduce | None:
    """:func:`all_ranks_sum` when torch.distributed is initialised with more than one rank, else None."""
    import sys

    if "torch" not in sys.modules:
        return None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return all_ranks_sum
    return None


class PowerLimitOptimizer:
    """Tries the power limits during the first steps and keeps the cheapest; see the module text.

    ``backend``: the GPUs of this process (the Tracker's). ``on_event(kind, fields)``: told of every limit
    tried and of the choice (the Tracker records them as markers). ``timer``: seconds (the emulated GPUs'
    own time, when they run on a virtual clock).
    """

    def __init__(
        self,
        backend: GpuBackend,
        *,
        eta: float = DEFAULT_ETA,
        warmup_steps: int = 2,
        profile_steps: int = 5,
        step_w: int = DEFAULT_STEP_W,
        limits_w: Sequence[int] | None = None,
        allow_clock_changes: bool = False,
        environ: Mapping[str, str] | None = None,
        handle_sigterm: bool = True,
        reduce: Reduce | str | None = "auto",
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 <= eta <= 1:
            raise ValueError(f"eta must be between 0 and 1, got {eta!r}")
        if warmup_steps < 0 or profile_steps < 1 or step_w < 1:
            raise ValueError("warmup_steps must be 0 or more, profile_steps and step_w 1 or more")
        self.eta = eta
        self.warmup_steps, self.profile_steps = warmup_steps, profile_steps
        self._actuator = PowerLimitActuator(backend.power_limits(), allow_clock_changes=allow_clock_changes,
                                            environ=environ, handle_sigterm=handle_sigterm)
        try:
            self.limits_w = self._limits(limits_w, step_w)
        except BaseException:
            self._actuator.close()
            raise
        self.dry_run = self._actuator.dry_run
        self._gpu_count = len(backend.gpus)
        self._gpus_measured = self._gpu_count  # over every rank, once a trial was reduced
        if isinstance(reduce, str) and reduce != "auto":
            raise ValueError(f"reduce must be a function, None or 'auto', got {reduce!r}")
        self._reduce: Reduce | None = default_reduce() if isinstance(reduce, str) else reduce
        self._on_event = on_event
        self._meter = EnergyMeter(backend, timer=timer)
        self._trial = 0
        self._step_in_trial = 0
        self._sums = [0.0, 0.0, 0]  # energy J, time s, steps of the current trial
        self.trials: list[PowerLimitTrial] = []
        self.choice: PowerLimitChoice | None = None
        self.unmeasured_steps = 0  # steps whose energy reading failed (left out of the means)
        self._closed = False
        self._set(self.limits_w[0], "trial")
        self._last: MeterReading = self._meter.read()

    def _limits(self, limits_w: Sequence[int] | None, step_w: int) -> list[int]:
        range_w = self._actuator.range_w()
        if limits_w is not None:
            chosen = sorted({int(w) for w in limits_w}, reverse=True)
            outside = [w for w in chosen if range_w is not None and not range_w[0] <= w <= range_w[1]]
            if not chosen or outside:
                raise ValueError(f"limits_w {outside or 'is empty'}: every limit must be within the GPUs' range "
                                 f"{range_w[0] if range_w else '?'}–{range_w[1] if range_w else '?'} W")
            return chosen
        if range_w is None:
            raise ValueError("this GPU backend cannot say which power limits it accepts: pass limits_w")
        return limits_to_try(range_w, step_w)

    @property
    def done(self) -> bool:
        return self.choice is not None

    @property
    def planned_steps(self) -> int:
        """Steps until the choice: (warm-up + measured) steps for each limit."""
        return (self.warmup_steps + self.profile_steps) * len(self.limits_w)

    @property
    def current_w(self) -> int | None:
        """The limit set now (in a dry run, the one that would be)."""
        return self._actuator.current_w

    def on_step_end(self) -> None:
        """A step ended (the Tracker's step marker): measure it, and move to the next limit when it is time."""
        if self.done or self._closed:
            return
        reading = self._meter.read()
        begin, self._last = self._last, reading
        self._step_in_trial += 1
        if self._step_in_trial > self.warmup_steps:
            energy_j = self._meter.energy_j(begin, reading)
            if energy_j is None:
                self.unmeasured_steps += 1
            else:
                self._sums[0] += energy_j
                self._sums[1] += reading.t_s - begin.t_s
                self._sums[2] += 1
        if self._step_in_trial == self.warmup_steps + self.profile_steps:
            self._finish_trial()

    def _finish_trial(self) -> None:
        energy_j, time_s, steps = self._sums
        values = [energy_j, time_s, float(steps), 1.0, float(self._gpu_count)]
        if self._reduce is not None:
            values = list(self._reduce(values))  # every rank, once per trial: the same numbers everywhere
        energy_j, time_s, ranks = values[0], values[1], values[3]
        steps = round(values[2])
        self._gpus_measured = round(values[4])
        if steps == 0:
            raise RuntimeError(f"no step at {self.limits_w[self._trial]} W could be measured (every energy "
                               "reading failed)")
        # Each rank counted its own steps and its own GPUs' energy: one step of the job is steps / ranks.
        self.trials.append(PowerLimitTrial(self.limits_w[self._trial], steps, time_s / steps,
                                           energy_j * ranks / steps))
        self._trial += 1
        self._step_in_trial = 0
        self._sums = [0.0, 0.0, 0]
        if self._trial < len(self.limits_w):
            self._set(self.limits_w[self._trial], "trial")
        else:
            self._decide()

    def _decide(self) -> None:
        max_power_w = self.limits_w[0] * self._gpus_measured
        best = min(self.trials, key=lambda t: (t.cost(self.eta, max_power_w), -t.limit_w))
        self.choice = PowerLimitChoice(best.limit_w, self.limits_w[0], self.eta, max_power_w, tuple(self.trials),
                                       self.dry_run)
        self._set(best.limit_w, None)
        log.info("%s", self.choice.summary())
        if self._on_event is not None:
            self._on_event(POWER_LIMIT_EVENT, self.choice.event_fields())

    def _set(self, limit_w: int, phase: str | None) -> None:
        self._actuator.set_w(limit_w)
        if phase is not None and self._on_event is not None:
            self._on_event(POWER_LIMIT_EVENT, {"phase": phase, "limit_w": limit_w, "dry_run": int(self.dry_run)})

    def close(self) -> None:
        """Restore the default power limit (idempotent); the choice stays readable."""
        if self._closed:
            return
        self._closed = True
        self._actuator.close()

    def __enter__(self) -> PowerLimitOptimizer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

