"""A data-parallel training workload on H100-class GPUs, as piecewise-constant power over time.

The simulator's ground truth. Time is split into *chunks* (a warm-up, each training step, the odd
evaluation and checkpoint pause), and each chunk into kernel-scale *segments* (a few ms to tens of ms)
of constant utilisation, SM clock and power, so the true energy up to any instant is an exact sum, with
no integration error to argue about.

A step goes through the phases real data-parallel training shows: a data-loader stall, forward,
backward, all-reduce (communication: low utilisation; faster GPUs wait here for the slowest), the
optimizer (memory-bound), and a short host-side gap. Between steps the GPUs idle with clocks up;
during long pauses clocks park and power falls to the static floor.

Power follows a DVFS-style model: static power (rising slowly with temperature, i.e. leakage), plus a
clock-tree term when clocks are up, plus dynamic power proportional to activity × utilisation ×
(f / f_max)^2.5. When that would exceed the 700 W board limit, the SM clock drops until it fits, in
15 MHz steps, as the real power controller does. Temperature follows a first-order thermal model with a
two-minute time constant, so it drifts slowly with load.
"""

from __future__ import annotations

import math
from collections import deque
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
class Chunk:
    """A stretch of the timeline; every GPU has the same number of segments (arrays are (G, M))."""

    start_ms: float
    end_ms: float
    seg_start_ms: np.ndarray
    power_w: np.ndarray
    util: np.ndarray
    clock_mhz: np.ndarray
    cum_energy_mj: np.ndarray  # energy from the chunk start to each segment start
    cum_busy_ms: np.ndarray  # utilisation-weighted time from the chunk start to each segment start
    energy0_mj: np.ndarray  # (G,) energy since the timeline began, at the chunk start
    busy0_ms: np.ndarray
    temp0_c: np.ndarray
    temp1_c: np.ndarray
    step: int | None  # the training step this chunk is, if it is one

    def _segment(self, t_ms: float) -> np.ndarray:
        return np.maximum((self.seg_start_ms <= t_ms).sum(axis=1) - 1, 0)

    def state_at(self, t_ms: float) -> dict[str, np.ndarray]:
        """Cumulative energy and busy time, and the instant power, clock and temperature, per GPU."""
        rows = np.arange(self.seg_start_ms.shape[0])
        k = self._segment(t_ms)
        into = t_ms - self.seg_start_ms[rows, k]
        power = self.power_w[rows, k]
        fraction = (t_ms - self.start_ms) / max(self.end_ms - self.start_ms, 1e-9)
        return {
            # W × ms = mJ
            "energy_mj": self.energy0_mj + self.cum_energy_mj[rows, k] + power * into,
            "busy_ms": self.busy0_ms + self.cum_busy_ms[rows, k] + self.util[rows, k] * into,
            "power_w": power,
            "util": self.util[rows, k],
            "clock_mhz": self.clock_mhz[rows, k],
            "temp_c": self.temp0_c + (self.temp1_c - self.temp0_c) * fraction,
        }


class TrainingTimeline:
    """Generates chunks lazily as time is asked for; queries must not go back before the last one."""

    def __init__(self, physics: list[GpuPhysics], rng: np.random.Generator) -> None:
        self._physics = physics
        self._rng = rng
        g = len(physics)
        self._idle_w = np.array([p.idle_w for p in physics])[:, None]
        self._clock_idle_w = np.array([p.clock_idle_w for p in physics])[:, None]
        self._dynamic_w = np.array([p.dynamic_w for p in physics])[:, None]
        self._slowdown = np.array([p.slowdown for p in physics])
        self._ambient_c = np.array([p.ambient_c for p in physics])
        # The run's own character: step time, share of communication, how often it evaluates.
        self._step_ms = float(rng.uniform(700, 1300))
        self._comm_share = float(rng.uniform(0.06, 0.12))
        self._eval_every = int(rng.integers(150, 300))
        self._chunks: deque[Chunk] = deque()
        self._next_start_ms = 0.0
        self._next_step = 0
        self._energy_mj = np.zeros(g)
        self._busy_ms = np.zeros(g)
        self._temp_c = np.array([p.resting_temp_c() for p in physics])
        self.step_ends: deque[tuple[float, int]] = deque()
        self._append(self._warmup_phases(), step=None)

    def chunk_at(self, t_ms: float) -> Chunk:
        while self._chunks and self._chunks[0].end_ms <= t_ms and len(self._chunks) > 1:
            self._chunks.popleft()
        while self._chunks[-1].end_ms <= t_ms:
            self._extend()
            while len(self._chunks) > 1 and self._chunks[0].end_ms <= t_ms:
                self._chunks.popleft()
        return self._chunks[0]

    def _extend(self) -> None:
        if self._next_step and self._next_step % self._eval_every == 0 and self._chunks[-1].step is not None:
            self._append(self._eval_phases(), step=None)
            return
        step = self._next_step
        self._next_step += 1
        self._append(self._step_phases(), step=step)
        self.step_ends.append((self._chunks[-1].end_ms, step))

    def _full(self, value: float) -> np.ndarray:
        return np.full(len(self._physics), value)

    def _warmup_phases(self) -> list[Phase]:
        # Loading the model and the first data: GPUs idle with parked clocks.
        return [Phase("warmup", self._full(self._rng.uniform(2000, 6000)), 0.0, 0.0, False, 1)]

    def _eval_phases(self) -> list[Phase]:
        rng = self._rng
        return [
            Phase("eval", self._full(rng.uniform(3000, 10_000)), 0.6, 0.6, True, 200),
            Phase("checkpoint", self._full(rng.uniform(2000, 8000)), 0.0, 0.0, False, 1),
        ]

    def _step_phases(self) -> list[Phase]:
        rng = self._rng
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

    def _append(self, phases: list[Phase], step: int | None) -> None:
        rng = self._rng
        g = len(self._physics)
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
        length = np.concatenate(lengths, axis=1)
        util = np.concatenate(utils, axis=1)
        activity = np.concatenate(activities, axis=1)
        up = np.concatenate(clocks_up, axis=1)
        start = self._next_start_ms
        ends = start + np.cumsum(length, axis=1)
        seg_start = ends - length
        power, clock = self._power(util, activity, up, self._temp_c[:, None])
        energy = power * length
        busy = util * length
        duration = float(ends[0, -1] - start)
        chunk = Chunk(
            start_ms=start,
            end_ms=start + duration,
            seg_start_ms=seg_start,
            power_w=power,
            util=util,
            clock_mhz=clock,
            cum_energy_mj=np.cumsum(energy, axis=1) - energy,
            cum_busy_ms=np.cumsum(busy, axis=1) - busy,
            energy0_mj=self._energy_mj.copy(),
            busy0_ms=self._busy_ms.copy(),
            temp0_c=self._temp_c.copy(),
            temp1_c=self._thermal_step(energy.sum(axis=1), duration),
            step=step,
        )
        self._chunks.append(chunk)
        self._energy_mj = self._energy_mj + energy.sum(axis=1)
        self._busy_ms = self._busy_ms + busy.sum(axis=1)
        self._temp_c = chunk.temp1_c
        self._next_start_ms = chunk.end_ms

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

    def _thermal_step(self, energy_mj: np.ndarray, duration_ms: float) -> np.ndarray:
        mean_power_w = energy_mj / max(duration_ms, 1e-9)
        target = self._ambient_c + THERMAL_C_PER_W * mean_power_w
        decay = math.exp(-duration_ms / THERMAL_TIME_CONSTANT_MS)
        return target + (self._temp_c - target) * decay
