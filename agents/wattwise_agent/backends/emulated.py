"""Emulated GPUs: a GPU whose forward and backward take the time and energy a Perseus stage profile gives.

The emulation method of the Perseus paper, so that the stage profiler, the planner's prediction and a
measured run can be compared on a machine without a GPU. The training loop computes on the CPU as usual
and brackets each computation (``begin_computation``/``end_computation``: the profiler, the plan client
and the Tracker's ``stage`` do it; nested brackets of the same computation count once, and the innermost
end stretches it). When a computation ends the emulated GPU

* stretches its wall time by the profile's time ratio at the clock it ran at against the fastest
  profiled time (``t(f) / min t``): it sleeps for the difference before returning, so the caller, and
  the pipeline waiting on it, see the longer computation;
* charges the profile's power ``P(f) = energy(f) / time(f)`` over the stretched time to its energy
  counter; between computations (idle, waiting for a peer) it draws the profile's blocking power.

A computation that runs as long as the profile's fastest time is thus charged exactly the profile's time
and energy at its clock. ``pace`` replaces the ratio: each computation lasts ``pace ×`` the profile's time
at its clock (the CPU computation is padded; one that runs longer keeps its own time, at the profile's
power, and is counted in ``overruns``): steadier on a busy machine. ``slowdown`` (settable at any time)
makes every computation that much slower at the same power: this pipeline is a straggler.

``straggler_iteration_s`` (T′, settable at any time; None: none) emulates a slower *peer* pipeline, the
Perseus straggler scenario: the training loop marks each iteration's start (``begin_iteration``) and its
sync with the other pipelines (``wait_for_peers``, where the gradient all-reduce would wait); the sync
returns only once T′ has passed since the iteration began, the GPU drawing blocking power meanwhile. The
plan client calls both (``on_step_begin``; ``sync``, or ``on_step_end`` when the loop did not).

Clocks and power limits work through the same interfaces as NVML's (``clocks()``, ``power_limits()``), so
only :class:`~wattwise_agent.clock_guard.ClockActuator` and :class:`~wattwise_agent.power_guard.PowerLimitActuator`
change them, under the same two opt-ins, and reset them on exit. The supported SM clocks are the
profile's; unlocked, the GPU runs at the highest (as a GPU under load boosts). A power limit acts as
power capping does on a real GPU, by lowering the clock: each computation runs at the highest profiled
clock, at or below the locked one, whose profiled power is within the limit (the lowest clock when
none is), and so takes that clock's time and energy. A clock change during a computation splits it:
each part is stretched and charged at its own clock.

Everything it reports is labelled emulated (the GPU name, ``simulated = True``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from wattwise_agent.backends.base import ENERGY_COUNTER, POWER_INSTANT, GpuBackend, GpuInfo, Reading
from wattwise_agent.backends.clocks import ClockControlError
from wattwise_agent.profile_csv import INSTRUCTIONS, ProfileCsvError, Row, parse_rows

if TYPE_CHECKING:
    from wattwise_agent.profiling import StageProfile

log = logging.getLogger(__name__)

EMULATED_GPU_NAME = "Emulated GPU from a Perseus profile (emulated)"
POWER_LIMIT_STEP_W = 25
BASE_COUNTER_MJ = 10**9  # a driver loaded long ago: the counter does not start at zero
IDLE_TEMP_C, BUSY_TEMP_C = 40, 65


@dataclass(frozen=True)
class ComputationProfile:
    """One instruction of one stage: its time (s) and energy (J) at each profiled clock (MHz)."""

    instruction: str
    time_s: Mapping[int, float]
    energy_j: Mapping[int, float]

    def power_w(self, freq_mhz: int) -> float:
        return self.energy_j[freq_mhz] / self.time_s[freq_mhz]

    @property
    def fastest_time_s(self) -> float:
        return min(self.time_s.values())


@dataclass(frozen=True)
class EmulationProfile:
    """One pipeline stage's profile (the Perseus CSV's rows for ``stage``) and its blocking power (W)."""

    stage: int
    computations: Mapping[str, ComputationProfile]
    p_blocking_w: float
    clocks_mhz: tuple[int, ...]  # profiled for every instruction, highest first

    @classmethod
    def from_csv(cls, text: str | bytes, *, p_blocking_w: float, stage: int = 0) -> EmulationProfile:
        """From a profile CSV (a stage profiler's, or the planner's whole-pipeline one: ``stage`` picks)."""
        return cls.from_rows(parse_rows(text), p_blocking_w=p_blocking_w, stage=stage)

    @classmethod
    def from_stage_profile(cls, profile: StageProfile, *, p_blocking_w: float | None = None) -> EmulationProfile:
        """From a :class:`~wattwise_agent.profiling.StageProfile` (its blocking power unless one is given)."""
        blocking = p_blocking_w if p_blocking_w is not None else profile.p_blocking_w
        if blocking is None:
            raise ValueError("the stage profile has no blocking power (measure_blocking_power()): pass p_blocking_w")
        return cls.from_csv(profile.to_csv(), p_blocking_w=blocking, stage=profile.stage)

    @classmethod
    def from_rows(cls, rows: Iterable[Row], *, p_blocking_w: float, stage: int = 0) -> EmulationProfile:
        if not (math.isfinite(p_blocking_w) and p_blocking_w >= 0):
            raise ValueError(f"p_blocking_w must be a power in W, 0 or more; got {p_blocking_w!r}")
        times: dict[str, dict[int, float]] = {i: {} for i in INSTRUCTIONS}
        energies: dict[str, dict[int, float]] = {i: {} for i in INSTRUCTIONS}
        for row_stage, instruction, freq, time_s, energy_j in rows:
            if row_stage == stage:
                times[instruction][freq], energies[instruction][freq] = time_s, energy_j
        missing = [i for i in INSTRUCTIONS if not times[i]]
        if missing:
            raise ProfileCsvError(f"stage {stage}: the profile has no {' or '.join(missing)} rows")
        clocks = set(times[INSTRUCTIONS[0]]).intersection(*(times[i] for i in INSTRUCTIONS[1:]))
        if not clocks:
            raise ProfileCsvError(f"stage {stage}: forward and backward share no profiled clock")
        computations = {i: ComputationProfile(i, {f: times[i][f] for f in clocks}, {f: energies[i][f] for f in clocks})
                        for i in INSTRUCTIONS}
        return cls(stage, computations, float(p_blocking_w), tuple(sorted(clocks, reverse=True)))

    def effective_mhz(self, instruction: str, ceiling_mhz: int, limit_w: float | None) -> int:
        """The clock ``instruction`` runs at under a clock ceiling and a power limit (module text)."""
        below = [f for f in self.clocks_mhz if f <= ceiling_mhz] or [self.clocks_mhz[-1]]
        if limit_w is None:
            return below[0]
        computation = self.computations[instruction]
        return next((f for f in below if computation.power_w(f) <= limit_w), below[-1])

    def default_power_limits_w(self) -> tuple[int, int]:
        """A range like a real GPU's: from the lowest clock's power up to the highest power, in 25 W steps."""
        powers = [c.power_w(f) for c in self.computations.values() for f in self.clocks_mhz]
        lowest = min(c.power_w(self.clocks_mhz[-1]) for c in self.computations.values())
        step = POWER_LIMIT_STEP_W
        return max(step, math.floor(lowest / step) * step), math.ceil(max(powers) / step) * step


@dataclass(frozen=True)
class EmulatedComputation:
    """One computation as the emulated GPU ran it."""

    instruction: str
    freq_mhz: int  # the clock of its longest part
    time_s: float
    energy_j: float


@dataclass
class _Running:
    instruction: str
    start_s: float
    part_start_s: float
    part_mhz: int
    parts: list[tuple[int, float]]  # (clock, real seconds) of each finished part
    depth: int = 1  # brackets around it (a Tracker stage and a plan client instruction may both say so)


class EmulatedGpuBackend(GpuBackend):
    """One emulated GPU running ``profile``'s stage; see the module text.

    ``timer`` and ``sleep`` (seconds; default the monotonic clock and ``time.sleep``) are the GPU's time:
    a test passes a virtual clock whose ``sleep`` moves it on. ``power_limit_range_w`` (min, max) defaults
    to :meth:`EmulationProfile.default_power_limits_w`; the default limit is the maximum.
    """

    name = "emulated"
    simulated = True

    def __init__(
        self,
        profile: EmulationProfile,
        *,
        node: str = "emu-node",
        index: int = 0,
        pace: float | None = None,
        slowdown: float = 1.0,
        power_limit_range_w: tuple[int, int] | None = None,
        timer: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        history: int = 100_000,
    ) -> None:
        if pace is not None and not (math.isfinite(pace) and pace > 0):
            raise ValueError(f"pace must be a positive factor, got {pace!r}")
        low, high = power_limit_range_w or profile.default_power_limits_w()
        if not 0 < low <= high:
            raise ValueError(f"power_limit_range_w must be (min, max) W with 0 < min <= max, got {(low, high)}")
        self.profile = profile
        self.pace = pace
        self.slowdown = slowdown
        self.power_limit_range_w = (int(low), int(high))
        self._timer, self._sleep = timer, sleep
        self._gpu = GpuInfo(index=index, uuid=f"GPU-EMU-{node}-{index}", name=EMULATED_GPU_NAME,
                            energy_source=ENERGY_COUNTER, power_field=POWER_INSTANT, architecture="emulated")
        self._lock = threading.RLock()
        self._locked_mhz: int | None = None
        self._limit_w: int | None = None
        self._t_s = timer()
        self._energy_j = 0.0
        self._power_w = profile.p_blocking_w  # the level now: a computation's, or blocking
        self._stretch_until_s: float | None = None
        self._stretch_power_w = 0.0
        self._running: _Running | None = None
        self._open_brackets: dict[str, int] = {}  # outer brackets still to end, of a computation already ended
        self.overruns = 0  # computations that ran longer than ``pace`` allowed
        self.changes: list[tuple[str, int | None]] = []  # ("clock" | "power_limit", value; None = reset)
        self._straggler_s: float | None = None
        self._iteration_start_s: float | None = None
        self.waited_s = 0.0  # total time spent waiting for the straggler at syncs
        self.history: deque[EmulatedComputation] = deque(maxlen=history)

    @property
    def slowdown(self) -> float:
        return self._slowdown

    @slowdown.setter
    def slowdown(self, factor: float) -> None:
        if not (math.isfinite(factor) and factor >= 1.0):
            raise ValueError(f"slowdown must be a factor of 1 or more, got {factor!r}")
        self._slowdown = float(factor)

    @property
    def straggler_iteration_s(self) -> float | None:
        """T′: a peer pipeline's iteration time that every sync waits for (None: no straggler)."""
        return self._straggler_s

    @straggler_iteration_s.setter
    def straggler_iteration_s(self, time_s: float | None) -> None:
        if time_s is not None and not (math.isfinite(time_s) and time_s > 0):
            raise ValueError(f"straggler_iteration_s must be a time in seconds above 0, or None; got {time_s!r}")
        self._straggler_s = None if time_s is None else float(time_s)

    def begin_iteration(self) -> None:
        """An iteration starts now: its sync waits until the straggler's T′ has passed since."""
        self._iteration_start_s = self._timer()

    def wait_for_peers(self) -> float:
        """The iteration's sync with the other pipelines: wait (at blocking power) until the straggler's
        iteration time has passed since ``begin_iteration``; return the seconds waited (0.0: no straggler)."""
        straggler_s, start_s = self._straggler_s, self._iteration_start_s
        self._iteration_start_s = None
        if straggler_s is None or start_s is None:
            return 0.0
        began_s = self._timer()
        until_s = start_s + straggler_s
        while (left_s := until_s - self._timer()) > 0:
            self._sleep(left_s)
        waited_s = max(self._timer() - began_s, 0.0)
        self.waited_s += waited_s
        return waited_s

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return [self._gpu]

    @property
    def locked_mhz(self) -> int | None:
        """The locked SM clock (None: unlocked, the highest profiled clock)."""
        return self._locked_mhz

    @property
    def power_limit_w(self) -> int:
        """The power limit in force (the maximum of the range unless one was set)."""
        return self._limit_w if self._limit_w is not None else self.power_limit_range_w[1]

    def energy_j(self) -> float:
        """The energy since the GPU was created, now (the counter, unrounded)."""
        with self._lock:
            self._advance(self._timer())
            return self._energy_j

    # Readings.

    def read(self, t_ms: int) -> list[Reading | None]:
        with self._lock:
            self._advance(self._timer())
            busy = self._running is not None or self._stretch_until_s is not None
            return [Reading(
                energy_mj=BASE_COUNTER_MJ + math.floor(self._energy_j * 1000),
                power_mw=round(self._current_power_w() * 1000),
                sm_clock_mhz=self._running.part_mhz if self._running else self._ceiling_mhz(),
                util_pct=100 if busy else 0,
                temp_c=BUSY_TEMP_C if busy else IDLE_TEMP_C,
            )]

    def _current_power_w(self) -> float:
        return self._stretch_power_w if self._stretch_until_s is not None else self._power_w

    def _advance(self, now_s: float) -> None:
        """Integrate the power drawn from the last instant to ``now_s`` into the energy."""
        t_s = self._t_s
        if now_s <= t_s:
            return
        if self._stretch_until_s is not None:
            end_s = min(now_s, self._stretch_until_s)
            self._energy_j += self._stretch_power_w * (end_s - t_s)
            t_s = end_s
            if end_s >= self._stretch_until_s:
                self._stretch_until_s = None
        self._energy_j += self._power_w * (now_s - t_s)
        self._t_s = now_s

    # Computations.

    def begin_computation(self, instruction: str) -> None:
        if instruction not in self.profile.computations:
            return  # not profiled (an optimizer step, a loss): the GPU counts as blocking
        with self._lock:
            now_s = self._timer()
            self._advance(now_s)
            if self._running is not None and self._running.instruction == instruction:
                self._running.depth += 1  # bracketed twice: one computation
                return
            if self._running is not None:
                raise RuntimeError(f"{instruction} begins while {self._running.instruction} runs on {self._gpu.uuid}")
            self._open_brackets.pop(instruction, None)
            mhz = self._effective_mhz(instruction)
            self._running = _Running(instruction, now_s, now_s, mhz, [])
            self._power_w = self.profile.computations[instruction].power_w(mhz)

    def end_computation(self, instruction: str) -> None:
        if instruction not in self.profile.computations:
            return
        with self._lock:
            if self._open_brackets.get(instruction):
                self._open_brackets[instruction] -= 1  # an outer bracket of a computation already stretched
                return
            now_s = self._timer()
            self._advance(now_s)
            running = self._running
            if running is None or running.instruction != instruction:
                raise RuntimeError(f"{instruction} ends but {running.instruction if running else 'nothing'} runs "
                                   f"on {self._gpu.uuid}")
            self._running = None
            # The innermost bracket ends first: it stretches (so whoever measures there sees the whole
            # computation); the outer ones only close.
            self._open_brackets[instruction] = running.depth - 1
            running.parts.append((running.part_mhz, now_s - running.part_start_s))
            until_s = self._stretch(running, now_s)
        while until_s is not None and (left_s := until_s - self._timer()) > 0:
            self._sleep(left_s)

    def _stretch(self, running: _Running, now_s: float) -> float | None:
        """Charge a finished computation; return when its stretched time ends (None: it already has)."""
        computation = self.profile.computations[running.instruction]
        real_s = now_s - running.start_s
        parts = running.parts if real_s > 0 else [(running.parts[-1][0], 0.0)]
        durations = self._durations(computation, parts, real_s)
        total_s = sum(durations)
        energy_j = sum(computation.power_w(f) * d for (f, _), d in zip(parts, durations))
        accrued_j = sum(computation.power_w(f) * r for f, r in parts)
        freq_mhz = max(zip(durations, (f for f, _ in parts)))[1]
        self.history.append(EmulatedComputation(running.instruction, freq_mhz, max(total_s, real_s), energy_j))
        self._power_w = self.profile.p_blocking_w
        rest_s = total_s - real_s
        if rest_s <= 0:
            return None
        self._stretch_power_w = (energy_j - accrued_j) / rest_s
        self._stretch_until_s = now_s + rest_s
        return self._stretch_until_s

    def _durations(self, computation: ComputationProfile, parts: list[tuple[int, float]], real_s: float) -> list[float]:
        if self.pace is None:
            return [r * computation.time_s[f] / computation.fastest_time_s * self._slowdown for f, r in parts]
        share = [r / real_s for _, r in parts] if real_s > 0 else [1.0]
        durations = [self.pace * computation.time_s[f] * s * self._slowdown for (f, _), s in zip(parts, share)]
        if sum(durations) < real_s:
            self.overruns += 1
            if self.overruns == 1:
                log.warning("%s: a %s took %.4f s, longer than pace %.3g allows: it keeps its own time (further "
                            "overruns are counted in .overruns)", self._gpu.uuid, computation.instruction, real_s,
                            self.pace)
            return [r for _, r in parts]
        return durations

    # Clock and power-limit control (only through the actuators).

    def _ceiling_mhz(self) -> int:
        return self._locked_mhz if self._locked_mhz is not None else self.profile.clocks_mhz[0]

    def _effective_mhz(self, instruction: str) -> int:
        return self.profile.effective_mhz(instruction, self._ceiling_mhz(), self._limit_w)

    def _change(self, what: str, value: int | None) -> None:
        with self._lock:
            now_s = self._timer()
            self._advance(now_s)
            if what == "clock":
                self._locked_mhz = value
            else:
                self._limit_w = value
            self.changes.append((what, value))
            running = self._running
            if running is not None:  # the rest of the computation runs at the new clock
                running.parts.append((running.part_mhz, now_s - running.part_start_s))
                running.part_start_s, running.part_mhz = now_s, self._effective_mhz(running.instruction)
                self._power_w = self.profile.computations[running.instruction].power_w(running.part_mhz)

    def clocks(self) -> EmulatedClocks:
        return EmulatedClocks(self)

    def power_limits(self) -> EmulatedPowerLimits:
        return EmulatedPowerLimits(self)


class EmulatedClocks:
    """:class:`~wattwise_agent.backends.clocks.GpuClocks` of an emulated GPU: its profile's clocks."""

    def __init__(self, gpu: EmulatedGpuBackend) -> None:
        self._gpu = gpu

    @property
    def description(self) -> str:
        return self._gpu.gpus[0].uuid

    def supported_graphics_clocks_mhz(self) -> list[int]:
        return list(self._gpu.profile.clocks_mhz)

    def lock_graphics_clock(self, freq_mhz: int) -> None:
        if freq_mhz not in self._gpu.profile.clocks_mhz:
            raise ClockControlError(f"GPU {self.description}: {freq_mhz} MHz is not a profiled clock")
        self._gpu._change("clock", freq_mhz)

    def reset_graphics_clock(self) -> None:
        self._gpu._change("clock", None)


class EmulatedPowerLimits:
    """:class:`~wattwise_agent.backends.power_limits.GpuPowerLimits` of an emulated GPU."""

    def __init__(self, gpu: EmulatedGpuBackend) -> None:
        self._gpu = gpu

    @property
    def description(self) -> str:
        return self._gpu.gpus[0].uuid

    def power_limit_range_w(self) -> tuple[int, int]:
        return self._gpu.power_limit_range_w

    def set_power_limit_w(self, limit_w: int) -> None:
        low, high = self._gpu.power_limit_range_w
        if not low <= limit_w <= high:
            raise ClockControlError(f"GPU {self.description}: {limit_w} W is outside its range {low}–{high} W")
        self._gpu._change("power_limit", int(limit_w))

    def reset_power_limit(self) -> None:
        self._gpu._change("power_limit", None)
