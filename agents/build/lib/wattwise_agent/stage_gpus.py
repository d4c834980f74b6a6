"""Which GPUs a pipeline stage's process measures and may clock, shared by the profiler and plan client.

A training process (one pipeline rank) drives one GPU: by default the current CUDA device (found by
UUID, so ``CUDA_VISIBLE_DEVICES`` remapping cannot pick the wrong one), else whatever the NVML backend
selects (``CUDA_VISIBLE_DEVICES``, else all GPUs). Clocks are only ever changed on GPUs named
explicitly or found this way: if the selection is a guess that covers several GPUs, clock changes are
refused rather than applied to GPUs that may belong to other ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.clock_guard import ClockActuator, ClockChangesRefused
from wattwise_agent.torch_cuda import current_cuda_gpu_uuid


@dataclass
class StageGpus:
    backend: GpuBackend
    owned: bool  # created here, so closed here
    explicit: bool  # named by the caller or found from the current CUDA device

    def close(self) -> None:
        if self.owned:
            self.backend.close()


def open_stage_gpus(
    backend: GpuBackend | str, gpus: Sequence[str] | int | None = None, *, node: str = "sim-node", seed: int = 0
) -> StageGpus:
    """``backend``: ``"nvml"``, ``"simulated"`` or a GpuBackend; ``gpus``: NVML selectors, or a count."""
    if isinstance(backend, GpuBackend):
        return StageGpus(backend, owned=False, explicit=True)
    if backend == "simulated":
        from wattwise_agent.backends.simulated import SimulatedBackend

        count = gpus if isinstance(gpus, int) else 1
        return StageGpus(SimulatedBackend(count, node=node, seed=seed, step_events=False), owned=True,
                         explicit=True)
    if backend != "nvml":
        raise ValueError(f"unknown backend {backend!r}: use 'nvml', 'simulated' or a GpuBackend")
    from wattwise_agent.backends.nvml import NvmlBackend

    if isinstance(gpus, int):
        raise ValueError("gpus= for the nvml backend is a list of indices or UUIDs")
    selectors = list(gpus) if gpus else None
    if selectors is None:
        current = current_cuda_gpu_uuid()
        selectors = [current] if current else None
    return StageGpus(NvmlBackend(selectors), owned=True, explicit=selectors is not None)


def stage_actuator(
    stage_gpus: StageGpus,
    *,
    allow_clock_changes: bool,
    environ: Mapping[str, str] | None = None,
    handle_sigterm: bool = True,
) -> ClockActuator:
    """The clock actuator for a stage's GPUs (a dry run unless clock changes are allowed twice over)."""
    actuator = ClockActuator(stage_gpus.backend.clocks(), allow_clock_changes=allow_clock_changes,
                             environ=environ, handle_sigterm=handle_sigterm)
    gpus = stage_gpus.backend.gpus
    if not actuator.dry_run and not stage_gpus.explicit and len(gpus) > 1:
        actuator.close()
        raise ClockChangesRefused(
            f"this process sees {len(gpus)} GPUs and CUDA is not initialised, so which one this pipeline "
            "stage drives is a guess: refusing to change clocks; pass gpus= (the stage's GPU index or UUID)"
        )
    return actuator
