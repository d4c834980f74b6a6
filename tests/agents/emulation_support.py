"""What the emulated-GPU tests share: a virtual time, and the fixture profile read without the agent's code."""

from __future__ import annotations

import csv
from pathlib import Path

from wattwise_agent.backends.emulated import EmulatedGpuBackend, EmulationProfile

PROFILE_CSV = (Path(__file__).parent / "fixtures" / "a100_2_stages.csv").read_text()
P_BLOCKING_W = 80.0


class VirtualTime:
    """Seconds that move only when the test computes or a sleeper sleeps: no test waits for real time."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def timer(self) -> float:
        return self.now_s

    def sleep(self, seconds: float) -> None:
        self.now_s += max(seconds, 0.0)

    def compute(self, seconds: float) -> None:
        self.now_s += seconds


def profile_table(stage: int = 0) -> dict[tuple[str, int], tuple[float, float]]:
    """``(instruction, MHz) -> (time s, energy J)`` of one stage, read with the csv module only (the oracle)."""
    rows = csv.DictReader(PROFILE_CSV.splitlines())
    return {(r["instruction"], int(r["frequency"])): (float(r["time"]), float(r["energy"]))
            for r in rows if int(r["stage"]) == stage}


def fastest_time_s(instruction: str, stage: int = 0) -> float:
    return min(t for (name, _), (t, _) in profile_table(stage).items() if name == instruction)


def profile_step(limit_w: int, communication_s: float) -> tuple[float, float]:
    """(time s, energy J) of one data-parallel step of one GPU (a forward, a backward, then ``communication_s`` at
    blocking power) under a power limit, from the profile rows alone: each computation at the highest clock
    whose profiled power is within the limit."""
    table = profile_table()
    clocks = sorted({f for _, f in table}, reverse=True)
    time_s, energy_j = communication_s, P_BLOCKING_W * communication_s
    for name in ("forward", "backward"):
        freq = next((f for f in clocks if table[(name, f)][1] / table[(name, f)][0] <= limit_w), clocks[-1])
        time_s += table[(name, freq)][0]
        energy_j += table[(name, freq)][1]
    return time_s, energy_j


def emulated_gpu(time: VirtualTime, **options: object) -> EmulatedGpuBackend:
    profile = EmulationProfile.from_csv(PROFILE_CSV, p_blocking_w=P_BLOCKING_W)
    return EmulatedGpuBackend(profile, timer=time.timer, sleep=time.sleep, **options)  # type: ignore[arg-type]
