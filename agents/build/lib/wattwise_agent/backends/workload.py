"""A data-parallel training workload on H100-class GPUs, as piecewise-constant power over wall-clock time.

The simulator's ground truth. A simulated node runs one training job that has always been running: a
*cycle* of training steps, then an evaluation and a checkpoint, repeated for ever and placed in Unix time
by a seeded phase. What a GPU draws is a function of the node, the seed and the instant alone, so
processes that simulate the same node read the same GPUs at the same instant (eight ranks of one job
each watching the node's GPUs see one set of GPUs), and a replay of a past period reads what a live
process read then.

A cycle is split into *chunks* (each training step, the evaluation, the checkpoint pause), and each
chunk into kernel-scale *segments* (a few ms to tens of ms) of constant utilisation, SM clock and
power, so the true energy up to any instant is an exact sum, with no integration error to argue about.
Every cycle's energy is a whole number of mJ per GPU (power is scaled by less than a millionth to make
it so), so the energy since the Unix epoch is ``cycles × cycle energy + energy into the cycle``, exact
in integer arithmetic however many cycles have passed.

A step goes through the phases real data-parallel training shows: a data-loader stall, forward,
backward, all-reduce (communication: low utilisation; faster GPUs wait here for the slowest), the
optimizer (memory-bound), and a short host-side gap. During the checkpoint pause clocks park and power
falls to the static floor.

Power follows a DVFS-style model: static power (rising slowly with temperature, i.e. leakage), plus a
clock-tree term when clocks are up, plus dynamic power proportional to activity × utilisation ×
(f / f_max)^2.5. When that would exceed the 700 W board limit, the SM clock drops until it fits, in
15 MHz steps, as the real power controller does. Temperature follows a first-order thermal model with a
two-minute time constant, so it drifts slowly with load; a cycle ends at the temperature it starts at.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

MAX_CLOCK_MHZ = 1980
IDLE_CLOCK_MHZ = 345
CLOCK_STEP_MHZ = 15
POWER_CAP_W = 700.0
DVFS_EXPONENT = 2.5
LEAKAGE_W_PER_C = 0.5
LEAKAGE_REFERENCE_C = 35.0
THERMAL_C_PER_W = 0.065
THERMAL_TIME_CONSTANT_MS = 120_000.0
# A cycle starts where it ends to within this (the thermal state is found by iterating to a fixed point).
PERIODIC_TEMP_C = 0.01


@dataclass(frozen=True)
class GpuPhysics:
    """One GPU's electrical and thermal character (chips of one model differ by a few per cent)."""

    idle_w: float  # static power at the reference temperature, clocks parked
    clock_idle_w: float  # extra power with clocks up and no kernel running
    dynamic_w: float  # dynamic power at full activity, 100 % utilisation and maximum clock
    slowdown: float  # relative compute time, >= 1: the slowest GPU sets the step time
    ambient_c: float

    @classmethod
    def draw(cls, rng: np.random.Generator) -> GpuPhysics:
        return cls(
            idle_w=float(rng.uniform(70, 85)),
            clock_idle_w=float(rng.uniform(20, 35)),
            dynamic_w=float(rng.uniform(540, 620)),
            slowdown=float(rng.uniform(1.0, 1.04)),
            ambient_c=float(rng.uniform(27, 33)),
        )

    def resting_temp_c(self) -> float:
        return self.ambient_c + THERMAL_C_PER_W * self.idle_w


@dataclass(frozen=True)
class Phase:
    """One phase of a chunk, for all GPUs: per-GPU durations, split into ``pieces`` segments."""

    name: str
    duration_ms: np.ndarray  # (G,)
    util: float  # mean utilisation, 0..1
    activity: float  # switching activity per unit of utilisation (memory-bound work is lower)
    clocks_up: bool
    pieces: int


@dataclass
class _Plan:
    """A chunk's random draws, apart from what depends on temperature: per-GPU segments (arrays are (G, M))."""

    length_ms: np.ndarray
    util: np.ndarray
    activity: np.ndarray
    clocks_up: np.ndarray
    step: int | None  # the step of the cycle this chunk is, if it is one


@dataclass(frozen=True)
class Instant:
    """The cycle's state at one instant of Unix time, per GPU."""

    cycle: int  # whole cycles since the one that holds the Unix epoch
    energy_mj: np.ndarray  # true energy since this cycle began (below ``TrainingCycle.energy_mj``)
    busy_ms: np.ndarray  # utilisation-weighted time since this cycle began
    power_w: np.ndarray
    util: np.ndarray
    clock_mhz: np.ndarray
    temp_c: np.ndarray


class TrainingCycle:
    """One cycle of a node's job, and the job at any instant of Unix time (:meth:`at`).

    ``length_ms`` and ``phase_ms`` are whole ms and ``energy_mj`` whole mJ per GPU, so cycle arithmetic is
    exact. Segments are held as ``(G, S)`` arrays over the whole cycle; chunk ``k`` owns segments
    ``seg_first[k]:seg_first[k + 1]`` (the same for every GPU).
    """

    def __init__(self, physics: list[GpuPhysics], rng: np.random.Generator) -> None:
        self._idle_w = np.array([p.idle_w for p in physics])[:, None]
        self._clock_idle_w = np.array([p.clock_idle_w for p in physics])[:, None]
        self._dynamic_w = np.array([p.dynamic_w for p in physics])[:, None]
        self._slowdown = np.array([p.slowdown for p in physics])
        self._ambient_c = np.array([p.ambient_c for p in physics])
        self._gpus = len(physics)
        # The job's character: step time, share of communication, how often it evaluates.
        self._step_ms = float(rng.uniform(700, 1300))
        self._comm_share = float(rng.uniform(0.06, 0.12))
        self.steps = int(rng.integers(150, 300))
        plans = [self._plan(self._step_phases(rng), rng, step) for step in range(self.steps)]
        plans += [self._plan(self._eval_phases(rng), rng, None)]
        plans += [self._plan([Phase("checkpoint", self._full(rng.uniform(2000, 8000)), 0.0, 0.0, False, 1)], rng, None)]
        # Whole milliseconds: the checkpoint (one segment per GPU) ends the cycle on the next whole ms.
        before_last = sum(p.length_ms.sum(axis=1) for p in plans[:-1])
        self.length_ms = math.ceil(float(np.max(before_last + plans[-1].length_ms[:, 0])))
        plans[-1].length_ms[:, 0] = self.length_ms - before_last
        self.phase_ms = int(rng.integers(0, self.length_ms))
        self._build(plans, self._periodic_temperature(plans))

    # -- the job at an instant -------------------------------------------------------------------

    def at(self, t_ms: int) -> Instant:
        """The job at Unix time ``t_ms``."""
        cycle, into = divmod(int(t_ms) - self.phase_ms, self.length_ms)
        return self._within(cycle, float(into))

    def _within(self, cycle: int, into_ms: float) -> Instant:
        k = int(np.searchsorted(self._chunk_start_ms, into_ms, side="right")) - 1
        first, last = self._seg_first[k], self._seg_first[k + 1]
        rows = np.arange(self._gpus)
        seg = first + np.maximum((self._seg_start_ms[:, first:last] <= into_ms).sum(axis=1) - 1, 0)
        into_seg = into_ms - self._seg_start_ms[rows, seg]
        power = self._power_w[rows, seg]
        span = max(self._chunk_end_ms[k] - self._chunk_start_ms[k], 1e-9)
        fraction = (into_ms - self._chunk_start_ms[k]) / span
        return Instant(
            cycle=cycle,
            energy_mj=self._cum_energy_mj[rows, seg] + power * into_seg,  # W × ms = mJ
            busy_ms=self._cum_busy_ms[rows, seg] + self._util[rows, seg] * into_seg,
            power_w=power,
            util=self._util[rows, seg],
            clock_mhz=self._clock_mhz[rows, seg],
            temp_c=self._temp0_c[k] + (self._temp1_c[k] - self._temp0_c[k]) * fraction,
        )

    def step_end_ms(self, cycle: int, step: int) -> int:
        """Unix time (ms, rounded down) at which ``step`` of ``cycle`` ends."""
        return self.phase_ms + cycle * self.length_ms + math.floor(self._step_end_ms[step])

    # -- building the cycle ----------------------------------------------------------------------

    def _full(self, value: float) -> np.ndarray:
        return np.full(self._gpus, value)

    def _eval_phases(self, rng: np.random.Generator) -> list[Phase]:
        return [Phase("eval", self._full(rng.uniform(3000, 10_000)), 0.6, 0.6, True, 200)]

    def _step_phases(self, rng: np.random.Generator) -> list[Phase]:
        compute_ms = self._step_ms * rng.uniform(0.97, 1.03)
        # Most steps the loader keeps up; now and then it stalls for a few hundred ms.
        stall_ms = rng.uniform(200, 800) if rng.random() < 0.04 else rng.exponential(15)
        forward = compute_ms * 0.32 * self._slowdown
        backward = compute_ms * 0.55 * self._slowdown
        compute_end = forward + backward
        allreduce = (compute_end.max() - compute_end) + self._step_ms * self._comm_share
        optimizer = compute_ms * 0.06 * self._slowdown
        gap = (optimizer.max() - optimizer) + rng.uniform(5, 40)
        return [
            Phase("dataloader", self._full(stall_ms), 0.0, 0.0, True, 1),
            Phase("forward", forward, float(rng.uniform(0.88, 0.97)), 0.85, True, 20),
            Phase("backward", backward, float(rng.uniform(0.93, 0.99)), 1.0, True, 30),
            Phase("allreduce", allreduce, 0.25, 0.25, True, 4),
            Phase("optimizer", optimizer, 0.5, 0.55, True, 3),
            Phase("gap", gap, 0.0, 0.0, True, 1),
        ]

    def _plan(self, phases: list[Phase], rng: np.random.Generator, step: int | None) -> _Plan:
        g = self._gpus
        lengths, utils, activities, clocks_up = [], [], [], []
        for phase in phases:
            if phase.pieces == 1:
                length = phase.duration_ms[:, None]
            else:
                weights = rng.uniform(0.5, 1.5, (g, phase.pieces))
                length = phase.duration_ms[:, None] * weights / weights.sum(axis=1, keepdims=True)
            lengths.append(length)
            if phase.util > 0:
                utils.append(np.clip(phase.util + rng.normal(0, 0.03, (g, phase.pieces)), 0.0, 1.0))
            else:
                utils.append(np.zeros((g, phase.pieces)))
            activities.append(phase.activity * rng.uniform(0.95, 1.05, (g, phase.pieces)))
            clocks_up.append(np.full((g, phase.pieces), phase.clocks_up))
        return _Plan(np.concatenate(lengths, axis=1), np.concatenate(utils, axis=1),
                     np.concatenate(activities, axis=1), np.concatenate(clocks_up, axis=1), step)

    def _power(
        self, util: np.ndarray, activity: np.ndarray, clocks_up: np.ndarray, temp_c: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        static = self._idle_w + LEAKAGE_W_PER_C * np.maximum(temp_c - LEAKAGE_REFERENCE_C, 0.0)
        base = static + np.where(clocks_up, self._clock_idle_w, 0.0)
        demand = self._dynamic_w * activity * util  # dynamic power if the clock stayed at maximum
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(demand > 0, (POWER_CAP_W - base) / demand, 1.0)
        freq = MAX_CLOCK_MHZ * np.clip(ratio, 0.0, 1.0) ** (1 / DVFS_EXPONENT)
        freq = np.floor(freq / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ  # round down: stay under the cap
        freq = np.where(clocks_up, np.minimum(freq, MAX_CLOCK_MHZ), IDLE_CLOCK_MHZ)
        power = base + demand * (freq / MAX_CLOCK_MHZ) ** DVFS_EXPONENT
        return power, freq

    def _thermal_step(self, temp_c: np.ndarray, energy_mj: np.ndarray, duration_ms: float) -> np.ndarray:
        mean_power_w = energy_mj / max(duration_ms, 1e-9)
        target = self._ambient_c + THERMAL_C_PER_W * mean_power_w
        decay = math.exp(-duration_ms / THERMAL_TIME_CONSTANT_MS)
        return target + (temp_c - target) * decay

    def _temperatures(self, plans: list[_Plan], temp_c: np.ndarray) -> list[np.ndarray]:
        """Each chunk's starting temperature, and the cycle's end temperature last, from ``temp_c``."""
        temps = [temp_c]
        for plan in plans:
            power, _ = self._power(plan.util, plan.activity, plan.clocks_up, temps[-1][:, None])
            duration = float(plan.length_ms[0].sum())
            temps.append(self._thermal_step(temps[-1], (power * plan.length_ms).sum(axis=1), duration))
        return temps

    def _periodic_temperature(self, plans: list[_Plan]) -> list[np.ndarray]:
        """Chunk temperatures of a cycle that ends as warm as it starts: iterate the cycle to a fixed point
        (each pass shrinks the difference by the thermal decay over a cycle; Aitken's step speeds it up)."""
        start = np.array([self._ambient_c[g] + THERMAL_C_PER_W * 400.0 for g in range(self._gpus)])
        for _ in range(20):
            temps = self._temperatures(plans, start)
            if np.max(np.abs(temps[-1] - start)) < PERIODIC_TEMP_C:
                return temps
            again = self._temperatures(plans, temps[-1])[-1]
            first, second = temps[-1] - start, again - temps[-1]
            with np.errstate(divide="ignore", invalid="ignore"):
                ratio = np.where(np.abs(first) > 1e-12, second / first, 0.0)
            start = again + second * np.clip(ratio, -0.9, 0.9) / (1 - np.clip(ratio, -0.9, 0.9))
        raise RuntimeError("the simulated cycle's temperature did not settle")  # not seen: a cycle lasts minutes

    def _build(self, plans: list[_Plan], temps: list[np.ndarray]) -> None:
        """Lay the chunks end to end as whole-cycle segment arrays, energy scaled to whole mJ per GPU."""
        g = self._gpus
        seg_start, power, util, clock, chunk_start, chunk_end, seg_first = [], [], [], [], [], [], [0]
        start = np.zeros(g)
        step_ends = []
        for plan, temp in zip(plans, temps[:-1]):
            ends = start[:, None] + np.cumsum(plan.length_ms, axis=1)
            seg_start.append(ends - plan.length_ms)
            p, f = self._power(plan.util, plan.activity, plan.clocks_up, temp[:, None])
            power.append(p)
            util.append(plan.util)
            clock.append(f)
            chunk_start.append(float(start[0]))
            chunk_end.append(float(ends[0, -1]))
            seg_first.append(seg_first[-1] + plan.length_ms.shape[1])
            if plan.step is not None:
                step_ends.append(float(ends[0, -1]))
            start = ends[:, -1]
        lengths = np.diff(np.concatenate([*seg_start, np.full((g, 1), float(self.length_ms))], axis=1), axis=1)
        power_w = np.concatenate(power, axis=1)
        energy = (power_w * lengths).sum(axis=1)
        # Whole mJ per cycle: scale power by round(E) / E, well under a millionth.
        scale = np.round(energy) / energy
        self._power_w = power_w * scale[:, None]
        self.energy_mj = np.round(energy).astype(np.int64)
        self._seg_start_ms = np.concatenate(seg_start, axis=1)
        self._util = np.concatenate(util, axis=1)
        self._clock_mhz = np.concatenate(clock, axis=1)
        seg_energy = self._power_w * lengths
        self._cum_energy_mj = np.cumsum(seg_energy, axis=1) - seg_energy
        busy = self._util * lengths
        self._cum_busy_ms = np.cumsum(busy, axis=1) - busy
        self.busy_ms = busy.sum(axis=1)
        self._chunk_start_ms = np.array(chunk_start)
        self._chunk_end_ms = np.array(chunk_end)
        self._seg_first = np.array(seg_first)
        self._temp0_c = np.array(temps[:-1])
        self._temp1_c = np.array(temps[1:])
        self._step_end_ms = np.array(step_ends)
