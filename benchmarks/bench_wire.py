"""Benchmark: the CPU cost of the wire format, per batch and per sample.

Run ``make bench-wire`` (``BENCH_ARGS="--json out.json"`` and the like pass options; no services needed). For each batch shape
(default 8 GPUs × 50 samples, one node's 5 s window at the agent's default 10 Hz, and 64 GPUs × 50,
the most GPUs one batch may hold) it times, with ``time.process_time`` over many iterations:

* ``decode``: :func:`wattwise_agent.wire.decode_batch` on the already-parsed JSON payload, the validation
  ingest runs on every batch (field limits, column ranges, timestamps, events);
* ``open+decode``: :func:`wattwise_agent.wire.open_envelope` (size, HMAC, JSON parsing) then ``decode_batch``,
  everything ingest does with a batch before it touches the database;
* ``seal``: :func:`wattwise_agent.wire.seal`, what the agent does to each batch it sends.

The payload is realistic: a counter in the millijoules a training GPU reaches, power around 300 W,
clocks, utilisation and temperatures, and two step markers. Each figure is the best of ``--repeat``
rounds (the least disturbed by other work on the machine), printed as µs per batch and ns per sample.
``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from wattwise_agent import wire  # noqa: E402

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TOKEN = "bench-node-token"
KEY = wire.signing_key(TOKEN)


def batch_payload(gpus: int, samples: int, *, seed: int = 0) -> dict[str, Any]:
    """One node's batch window: ``gpus`` GPUs with ``samples`` readings each, 100 ms apart."""
    rng = random.Random(seed)
    window_start = T0_MS
    entries = []
    for index in range(gpus):
        t_ms = [window_start + 100 * i + rng.randint(0, 3) for i in range(samples)]
        energy, energy_mj = 9_876_543_210 + index * 1_000_000, []
        for _ in range(samples):
            energy += rng.randint(25_000, 40_000)
            energy_mj.append(energy)
        entries.append({
            "uuid": f"GPU-{index:08x}-bench-0000-0000-000000000000",
            "index": index,
            "name": "NVIDIA H100 80GB HBM3",
            "energy_source": wire.ENERGY_COUNTER,
            "power_field": wire.POWER_INSTANT,
            "prev_t_ms": window_start - 100,
            "prev_energy_mj": 9_876_543_210 + index * 1_000_000,
            "t_ms": t_ms,
            "energy_mj": energy_mj,
            "power_mw": [rng.randint(250_000, 400_000) for _ in range(samples)],
            "sm_clock_mhz": [rng.choice((1410, 1980)) for _ in range(samples)],
            "util_pct": [rng.randint(80, 100) for _ in range(samples)],
            "temp_c": [rng.randint(55, 75) for _ in range(samples)],
        })
    return {
        "run": "gpt3-pretrain",
        "stream": "0123456789abcdef0123456789abcdef",
        "seq": 17,
        "simulated": False,
        "window_start_ms": window_start,
        "window_end_ms": window_start + 100 * samples,
        "gpus": entries,
        "events": [{"t_ms": window_start + 12, "kind": "step_end", "step": 12},
                   {"t_ms": window_start + 34, "kind": "step_end", "step": 13}],
    }


def open_and_decode(envelope: dict[str, Any]) -> wire.Batch:
    return wire.decode_batch(wire.open_envelope(envelope, wire.KIND_BATCH, KEY))


def cpu_us(action: Callable[[], object], *, min_cpu_s: float, repeat: int) -> float:
    """Best of ``repeat`` rounds of CPU time per call, in µs; each round runs for at least ``min_cpu_s``."""
    action()  # warm up (imports, caches)
    best = float("inf")
    for _ in range(repeat):
        calls, start = 0, time.process_time()
        while True:
            for _ in range(20):
                action()
            calls += 20
            elapsed = time.process_time() - start
            if elapsed >= min_cpu_s:
                break
        best = min(best, elapsed / calls * 1e6)
    return best


# ``decode`` of an 8 × 50 batch on the machine the 2026-12-03 figures were taken on (docs/benchmarks.md): what
# ``reference_decode_us`` compares a machine with, so that CPU figures taken on machines of different speeds
# can be set side by side.
REFERENCE_DECODE_US = 198.0


def reference_decode_us(*, min_cpu_s: float = 0.3, repeat: int = 3) -> float:
    """This machine's ``decode`` of an 8 × 50 batch, in µs of CPU (the best of ``repeat`` rounds)."""
    return cpu_us(partial(wire.decode_batch, batch_payload(8, 50)), min_cpu_s=min_cpu_s, repeat=repeat)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="8x50,64x50", help="GPUSxSAMPLES, comma-separated (default 8x50,64x50)")
    parser.add_argument("--min-cpu", type=float, default=0.5, help="CPU seconds per round (default 0.5)")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the best is reported (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures to this file")
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    for shape in args.shapes.split(","):
        gpus, samples = (int(part) for part in shape.lower().split("x"))
        payload = batch_payload(gpus, samples)
        envelope = wire.seal(wire.KIND_BATCH, "bench-node", payload, TOKEN)
        assert open_and_decode(envelope).samples == gpus * samples
        actions: dict[str, Callable[[], object]] = {
            "decode": partial(wire.decode_batch, payload),
            "open+decode": partial(open_and_decode, envelope),
            "seal": partial(wire.seal, wire.KIND_BATCH, "bench-node", payload, TOKEN),
        }
        for what, action in actions.items():
            us = cpu_us(action, min_cpu_s=args.min_cpu, repeat=args.repeat)
            per_sample_ns = us * 1000 / (gpus * samples)
            results.append({"shape": shape, "step": what, "us_per_batch": round(us, 1),
                            "ns_per_sample": round(per_sample_ns, 1)})
            print(f"{shape:>7} {what:<12} {us:9.1f} µs/batch {per_sample_ns:8.1f} ns/sample", flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
