"""Simulated backend: seeded, physically plausible H100-class GPUs with an exact ground truth.

Everything it reports is labelled simulated (the GPU name, ``simulated: true`` in every message), so a
simulated run can never pass for a measured one.

The counter it reports is ``floor`` of the true cumulative energy in mJ (plus a large offset, as a real
counter has counted since the driver loaded), so counter differences match the ground truth to within
1 mJ. A counter reset, when asked for, happens exactly at a sample instant (just after that reading), so
the next reading counts precisely the energy since that sample and the ground truth stays exact.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from agents.backends.base import (
    ENERGY_COUNTER,
    POWER_INSTANT,
    POWER_INTEGRATION,
    GpuBackend,
    GpuInfo,
    Reading,
)
from agents.backends.workload import GpuPhysics, TrainingTimeline

SIMULATED_GPU_NAME = "Simulated H100 80GB HBM3 (simulated)"
# A random reset only fires when the counter is well above what one interval can add, so that the
# reset is detectable from the data alone (a real driver reload does not happen twice in minutes).
RESET_MIN_COUNTER_MJ = 100_000_000


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big")


def simulated_uuid(node: str, index: int) -> str:
    return f"GPU-SIM-{node}-{index}"


class SimulatedBackend(GpuBackend):
    """``gpus`` simulated GPUs on ``node``; the same seed and node give the same run, sample for sample."""

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
    ) -> None:
        if gpus < 1:
            raise ValueError("a simulated node needs at least one GPU")
        if not 0.0 <= reset_probability <= 1.0:
            raise ValueError("reset_probability must be between 0 and 1")
        bad = [i for i in without_counter if not 0 <= i < gpus]
        if bad:
            raise ValueError(f"without_counter names GPU indices that do not exist: {bad}")
        physics_seed, workload_seed, counter_seed = np.random.SeedSequence([seed, _stable_hash(node)]).spawn(3)
        physics_rng = np.random.default_rng(physics_seed)
        physics = [GpuPhysics.draw(physics_rng) for _ in range(gpus)]
        self._timeline = TrainingTimeline(physics, np.random.default_rng(workload_seed))
        self._reset_rng = np.random.default_rng(counter_seed)
        # Counters have been counting since the driver loaded: hours to days of energy already.
        self._offset_mj = self._reset_rng.integers(10**9, 5 * 10**10, gpus).astype(np.float64)
        self._base_mj = np.zeros(gpus)
        self._gpus = [
            GpuInfo(
                index=i,
                uuid=simulated_uuid(node, i),
                name=SIMULATED_GPU_NAME,
                energy_source=POWER_INTEGRATION if i in without_counter else ENERGY_COUNTER,
                power_field=POWER_INSTANT,
                architecture="Hopper (simulated)",
            )
            for i in range(gpus)
        ]
        self._has_counter = np.array([i not in without_counter for i in range(gpus)])
        self._reset_at_ms = None if reset_at_s is None else reset_at_s * 1000
        self._reset_done = False
        self._reset_probability = reset_probability
        self._step_events = step_events
        self._origin_ms: int | None = None
        self._last_rel_ms: float | None = None
        self._last_busy_ms: np.ndarray | None = None
        self._first_energy_mj: np.ndarray | None = None
        self._last_energy_mj: np.ndarray | None = None
        self.resets_ms: list[int] = []  # sample instants after which the counters were reset

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return self._gpus

    def read(self, t_ms: int) -> list[Reading | None]:
        if self._origin_ms is None:
            self._origin_ms = t_ms
        rel = float(t_ms - self._origin_ms)
        if self._last_rel_ms is not None and rel < self._last_rel_ms:
            raise ValueError("the simulator cannot go back in time")
        state = self._timeline.chunk_at(rel).state_at(rel)
        energy = state["energy_mj"]
        if self._last_busy_ms is None or self._last_rel_ms is None or rel == self._last_rel_ms:
            util = state["util"]
        else:
            # NVML's utilisation is the busy share of the last sample period, not an instant value.
            util = (state["busy_ms"] - self._last_busy_ms) / (rel - self._last_rel_ms)
        counter = np.floor(self._offset_mj + energy - self._base_mj)
        readings: list[Reading | None] = [
            Reading(
                energy_mj=int(counter[i]) if self._has_counter[i] else None,
                power_mw=round(state["power_w"][i] * 1000),
                sm_clock_mhz=int(state["clock_mhz"][i]),
                util_pct=int(min(max(round(util[i] * 100), 0), 100)),
                temp_c=round(state["temp_c"][i]),
            )
            for i in range(len(self._gpus))
        ]
        if self._first_energy_mj is None:
            self._first_energy_mj = energy.copy()
        self._last_energy_mj = energy.copy()
        self._last_rel_ms = rel
        self._last_busy_ms = state["busy_ms"]
        if self._reset_due(rel, counter):
            # Just after this reading: the next one counts from zero exactly from this instant.
            self._base_mj = energy.copy()
            self._offset_mj = np.zeros_like(self._offset_mj)
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
        ends = self._timeline.step_ends
        if self._origin_ms is None:
            return []
        out = []
        while ends and self._origin_ms + ends[0][0] <= until_ms:
            end_ms, step = ends.popleft()
            if self._step_events:
                out.append({"t_ms": self._origin_ms + math.floor(end_ms), "kind": "step_end", "step": step})
        return out

    def ground_truth_energy_j(self) -> dict[str, float]:
        if self._first_energy_mj is None or self._last_energy_mj is None:
            return {gpu.uuid: 0.0 for gpu in self._gpus}
        joules = (self._last_energy_mj - self._first_energy_mj) / 1000
        return {gpu.uuid: float(joules[gpu.index]) for gpu in self._gpus}
