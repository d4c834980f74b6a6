"""Benchmark: the CPU cost of storing a window's columns encoded (``dashboard.telemetry.columns``), per million samples.

Run ``make bench-encoding`` (no services needed). For a batch of one node's 5 s window at the agent's
default 10 Hz (8 GPUs × 50 samples, what ``batch_store`` encodes in one ``encode_each`` call) and one window
alone, it times with ``time.process_time`` over many iterations: ``encode`` (what ingest adds per batch),
``decode`` of every column and ``decode`` of power alone (what a page reads), and prints core-seconds per
million samples and the encoded size in bytes per sample (raw: 22). Each figure is the best of ``--repeat``
rounds (the least disturbed by other work on the machine).

The readings are realistic in shape: steps of 100 ms with a few ms of jitter, power around 300 W drawn as a
random walk with noise, an energy counter that integrates it, a clock that changes now and then,
utilisation and temperature that drift.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard.telemetry import columns  # noqa: E402


def readings(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    t = np.cumsum(100 + rng.integers(-3, 4, n)) - 100
    power_mw = np.clip(300_000 + np.cumsum(rng.integers(-8_000, 8_001, n)) + rng.integers(-3_000, 3_001, n), 0, None)
    return {
        "t_offset_ms": t - t[0],
        "energy_mj": 8_000_000_000_000 + np.cumsum(power_mw * np.diff(t, prepend=t[0] - 100) // 1000),
        "power_mw": power_mw,
        "sm_clock_mhz": np.where(rng.random(n) < 0.05, 1410, 1980),
        "util_pct": np.clip(95 + np.cumsum(rng.integers(-1, 2, n)), 0, 100),
        "temp_c": 60 + np.cumsum(rng.random(n) < 0.05),
    }


def best_seconds(work: Callable[[], object], iterations: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        for _ in range(iterations):
            work()
        best = min(best, (time.process_time() - start) / iterations)
    return best


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpus", type=int, default=8, help="windows per batch (GPUs of one node)")
    parser.add_argument("--samples", type=int, default=50, help="samples per window (5 s at 10 Hz)")
    parser.add_argument("--iterations", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    batch = [readings(rng, args.samples) for _ in range(args.gpus)]
    blobs = columns.encode_each(batch)
    per_batch = args.gpus * args.samples
    cases: dict[str, tuple[Callable[[], object], int]] = {
        "encode, a batch": (lambda: columns.encode_each(batch), per_batch),
        "encode, one window alone": (lambda: columns.encode(batch[0]), args.samples),
        "decode every column, a batch": (lambda: columns.decode_many(blobs), per_batch),
        "decode power alone, a batch": (lambda: columns.decode_many(blobs, ("power_mw",)), per_batch),
    }
    print(f"{args.gpus} windows × {args.samples} samples; encoded "
          f"{sum(map(len, blobs)) / per_batch:.2f} bytes/sample (raw 22), zstd level {columns.ZSTD_LEVEL}")
    for name, (work, samples) in cases.items():
        seconds = best_seconds(work, args.iterations, args.repeat)
        print(f"{name}: {seconds * 1e6:,.1f} µs, {seconds / samples * 1e6:.2f} core-s per million samples")
    return 0


if __name__ == "__main__":
    sys.exit(main())
