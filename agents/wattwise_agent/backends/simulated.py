"""Simulated backend: seeded, physically plausible H100-class GPUs with an exact ground truth.

Everything it reports is labelled simulated (the GPU name, ``simulated: true`` in every message), so a
simulated run can never pass for a measured one.

What a simulated GPU reads is a function of wall-clock time, seeded by the node, the seed and the GPU's
index (``wattwise_agent.backends.workload``): independent processes simulating the same node read the same
counter at the same instant, as processes sharing a real GPU do. A node has ``NODE_GPUS`` GPUs (more if
asked for more); a backend reads the first ``gpus`` of them, or those it ``select``s.

The counter it reports is ``floor`` of the true energy since the Unix epoch in mJ, plus a large offset
(the counter of a driver loaded long ago), computed in integer arithmetic, so counter differences match
the ground truth to within 1 mJ. A counter reset, when asked for, happens exactly at a sample instant
(just after that reading), so the next reading counts precisely the energy since that sample and the
ground truth stays exact. Resets belong to one backend: another process simulating the node sees none.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import numpy as np

from wattwise_agent.backends.base import (
    ENERGY_COUNTER,
    POWER_INSTANT,
    POWER_INTEGRATION,
    GpuBackend,
    GpuInfo,
    Reading,
)
from wattwise_agent.backends.workload import GpuPhysics, Instant, TrainingCycle

SIMULATED_GPU_NAME = "Simulated H100 80GB HBM3 (simulated)"
NODE_GPUS = 8
"""GPUs of a simulated node, whatever a backend reads: what each draws depends on the whole node (all wait
for the slowest), so the node must be the same whoever simulates it."""
UTIL_PERIOD_MS = 100
"""Utilisation is the busy share of this long before a reading (NVML's is over its own sample period)."""
# A random reset only fires when the counter is well above what one interval can add, so that the
# reset is detectable from the data alone (a real driver reload does not happen twice in minutes).
RESET_MIN_COUNTER_MJ = 100_000_000


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def simulated_uuid(node: str, index: int) -> str:
    return f"GPU-SIM-{node}-{index}"


def _gpu_rng(seed: int, node: str, index: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(node), 1, index]))


@lru_cache(maxsize=16)
def node_cycle(seed: int, node: str, gpus: int) -> TrainingCycle:
    """The job of a simulated node with ``gpus`` GPUs (built once per process: it takes a few tenths of a second)."""
    physics = [GpuPhysics.draw(_gpu_rng(seed, node, i)) for i in range(gpus)]
    return TrainingCycle(physics, np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(node), 0])))


class SimulatedBackend(GpuBackend):
    """``gpus`` simulated GPUs on ``node``; the same seed and node give the same readings at the same instants.

    ``select``: read only these of the node's GPUs (indices), as one rank of a multi-process job does.
    """

    name = "simulated"
    simulated = True

    def __init__(
        self,
        gpus: int = 1,
        *,
        node: str = "sim-node",
        seed: int = 0,
        reset_at_s: float | None = None,
        reset_probability: float = 0.0,
        without_counter: Sequence[int] = (),
        step_events: bool = True,
        select: Sequence[int] | None = None,
    ) -> None:
        if gpus < 1:
            raise ValueError("a simulated node needs at least one GPU")
        if not 0.0 <= reset_probability <= 1.0:
            raise ValueError("reset_probability must be between 0 and 1")
        bad = [i for i in without_counter if not 0 <= i < gpus]
        if bad:
            raise ValueError(f"without_counter names GPU indices that do not exist: {bad}")
        indices = list(range(gpus)) if select is None else [int(i) for i in select]
        outside = [i for i in indices if not 0 <= i < gpus]
        if outside or not indices or len(set(indices)) != len(indices):
            raise ValueError(f"select must name distinct GPU indices of the node's {gpus}: got {list(indices)}")
        self._cycle = node_cycle(seed, node, max(gpus, NODE_GPUS))
        # The node's GPUs this backend reads (by their index on the node): a reading depends only on the
        # index, so one process reading GPU 2 of 4 reads what an agent reading all 4 reads for GPU 2.
        self._idx = np.array(indices)
        self._count = len(indices)
        self._reset_rng = np.random.default_rng(np.random.SeedSequence([seed, _stable_hash(node), 2]))
        # Counters have been counting since the driver loaded: the base makes them differ between GPUs.
        # After a reset the counter counts from the reference instant (cycle, energy into it) on.
        self._base_mj = np.array([int(_gpu_rng(seed, node, i).integers(10**9, 5 * 10**10)) for i in indices])
        self._ref_cycle = np.zeros(self._count, dtype=np.int64)
        self._ref_energy_mj = np.zeros(self._count)
        self._gpus = [
            GpuInfo(
                index=i,
                uuid=simulated_uuid(node, i),
                name=SIMULATED_GPU_NAME,
                energy_source=POWER_INTEGRATION if i in without_counter else ENERGY_COUNTER,
                power_field=POWER_INSTANT,
                architecture="Hopper (simulated)",
            )
            for i in indices
        ]
        self._has_counter = np.array([i not in without_counter for i in indices])
        self._reset_at_ms = None if reset_at_s is None else reset_at_s * 1000
        self._reset_done = False
        self._reset_probability = reset_probability
        self._step_events = step_events
        self._origin_ms: int | None = None
        self._last_t_ms: int | None = None
        self._first: Instant | None = None
        self._last: Instant | None = None
        self._next_step: tuple[int, int] | None = None  # (cycle, step) of the next step end to report
        self._steps_reported = 0
        self.resets_ms: list[int] = []  # sample instants after which the counters were reset

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return self._gpus

    @property
    def cycle_ms(self) -> int:
        """How long the node's job takes to come round again (steps, evaluation, checkpoint)."""
        return self._cycle.length_ms

    def _state(self, t_ms: int) -> Instant:
        full = self._cycle.at(t_ms)
        idx = self._idx
        return Instant(full.cycle, full.energy_mj[idx], full.busy_ms[idx], full.power_w[idx], full.util[idx],
                       full.clock_mhz[idx], full.temp_c[idx])

    def _between(self, before: Instant, after: Instant, what: str) -> np.ndarray:
        """True energy (``energy_mj``) or busy time (``busy_ms``) between two instants, per GPU."""
        per_cycle = getattr(self._cycle, what)[self._idx]
        return (after.cycle - before.cycle) * per_cycle + (getattr(after, what) - getattr(before, what))

    def read(self, t_ms: int) -> list[Reading | None]:
        t_ms = int(t_ms)
        if self._origin_ms is None:
            self._origin_ms = t_ms
        if self._last_t_ms is not None and t_ms < self._last_t_ms:
            raise ValueError("the simulator cannot go back in time")
        state = self._state(t_ms)
        # NVML's utilisation is the busy share of a sample period, not an instant value; the period is
        # fixed in time, so every reader sees the same.
        util = self._between(self._state(t_ms - UTIL_PERIOD_MS), state, "busy_ms") / UTIL_PERIOD_MS
        # Integer arithmetic: whole cycles are whole mJ; only the part into a cycle is floored.
        counter = (self._base_mj + (state.cycle - self._ref_cycle) * self._cycle.energy_mj[self._idx]
                   + np.floor(state.energy_mj - self._ref_energy_mj).astype(np.int64))
        readings: list[Reading | None] = [
            Reading(
                energy_mj=int(counter[i]) if self._has_counter[i] else None,
                power_mw=round(state.power_w[i] * 1000),
                sm_clock_mhz=int(state.clock_mhz[i]),
                util_pct=int(min(max(round(util[i] * 100), 0), 100)),
                temp_c=round(state.temp_c[i]),
            )
            for i in range(self._count)
        ]
        if self._first is None:
            self._first = state
        self._last = state
        self._last_t_ms = t_ms
        if self._reset_due(t_ms - self._origin_ms, counter):
            # Just after this reading: the next one counts from zero exactly from this instant.
            self._base_mj = np.zeros_like(self._base_mj)
            self._ref_cycle = np.full(self._count, state.cycle, dtype=np.int64)
            self._ref_energy_mj = state.energy_mj.copy()
            self.resets_ms.append(t_ms)
        return readings

    def _reset_due(self, rel_ms: float, counter: np.ndarray) -> bool:
        if self._reset_at_ms is not None and not self._reset_done and rel_ms >= self._reset_at_ms:
            self._reset_done = True
            return True
        if self._reset_probability > 0 and self._reset_rng.random() < self._reset_probability:
            return bool(np.all(counter >= RESET_MIN_COUNTER_MJ))
        return False

    def events(self, until_ms: int) -> list[dict[str, Any]]:
        """The job's step ends after this backend's first reading, up to ``until_ms``, numbered from 0."""
        if self._origin_ms is None:
            return []
        cycle = self._cycle
        if self._next_step is None:
            self._next_step = (cycle.at(self._origin_ms).cycle - 1, 0)
            while cycle.step_end_ms(*self._next_step) <= self._origin_ms:
                self._next_step = self._after(self._next_step)
        out = []
        while cycle.step_end_ms(*self._next_step) <= until_ms:
            if self._step_events:
                out.append({"t_ms": cycle.step_end_ms(*self._next_step), "kind": "step_end",
                            "step": self._steps_reported})
            self._steps_reported += 1
            self._next_step = self._after(self._next_step)
        return out

    def _after(self, at: tuple[int, int]) -> tuple[int, int]:
        cycle, step = at
        return (cycle, step + 1) if step + 1 < self._cycle.steps else (cycle + 1, 0)

    def ground_truth_energy_j(self) -> dict[str, float]:
        if self._first is None or self._last is None:
            return {gpu.uuid: 0.0 for gpu in self._gpus}
        joules = self._between(self._first, self._last, "energy_mj") / 1000
        return {gpu.uuid: float(joules[k]) for k, gpu in enumerate(self._gpus)}
