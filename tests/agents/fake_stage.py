"""A fake pipeline stage at the hardware edge: computing on a FakeGpu advances a fake timer and the GPU's
energy counter according to the SM clock the GPU is locked to (work / f seconds at static + dynamic power).

Nothing here measures anything: the profiler and plan client under test read the counter through the
NVML backend and time through the injected timer, as they would on a real GPU.
"""

from __future__ import annotations

from tests.agents.fake_nvml import FakeGpu

MAX_MHZ = 1980


class FakeStage:
    def __init__(self, gpu: FakeGpu, *, static_w: float = 200.0, dynamic_w: float = 400.0) -> None:
        self.gpu = gpu
        self.static_w = static_w
        self.dynamic_w = dynamic_w
        self.now_s = 0.0
        self.syncs = 0

    def timer(self) -> float:
        return self.now_s

    def synchronize(self) -> None:
        self.syncs += 1

    def power_w(self, freq_mhz: int) -> float:
        return self.static_w + self.dynamic_w * (freq_mhz / MAX_MHZ) ** 3

    def energy_j(self, work_mcycles: float, freq_mhz: int) -> float:
        return self.power_w(freq_mhz) * work_mcycles / freq_mhz

    def compute(self, work_mcycles: float) -> None:
        """Run ``work_mcycles`` million cycles at the GPU's current SM clock."""
        freq = self.gpu.sm_clock_mhz
        seconds = work_mcycles / freq
        self.now_s += seconds
        self.gpu.energy_mj += round(self.power_w(freq) * seconds * 1000)

    def idle(self, seconds: float) -> None:
        self.now_s += seconds
        self.gpu.energy_mj += round(self.static_w * seconds * 1000)
