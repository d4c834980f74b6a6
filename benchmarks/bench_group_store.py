"""Benchmark: the server CPU of storing groups of batches, per million samples, without the broker.

Run ``make bench-group-store`` (``BENCH_ARGS="--group 11 --rounds 5"`` and the like pass options). It is the part
of ``make bench-ingest``'s figure that this app's code decides, measured so that other work on the machine
moves it little:

* the groups are what the coalescing consumer stores (``dashboard.telemetry.coalesce.ingest_batches``: admit
  each envelope, its HMAC, JSON and wire models, then one transaction for the group), called in this process
  on envelopes sealed beforehand; Redis, kombu's message format and the agents are left out;
* each round stores ``--groups`` groups of ``--group`` batches (the size the consumer finds when agents
  stream: about 11 at its 0.1 s poll on the development machine); the batches come from ``--nodes`` nodes of
  ``--gpus`` GPUs, 50 readings per GPU (5 s at 10 Hz), each continuing its stream, as agents send them;
* CPU is this process's (``time.process_time``) plus its PostgreSQL backend's (``/proc/PID/stat``, clock
  ticks), per million samples stored; the best of ``--rounds`` rounds is printed (the least disturbed), with
  every round's figure;
* ``reference`` is this machine's CPU for one wire ``decode`` of an 8 × 50 batch (``bench_wire``), against
  the machine the 2026-12-03 figures were taken on: divide by the ratio to compare with them.

It empties the benchmark database (``DATABASE_URL``) first, as ``bench-ingest`` does.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

from bench_agent_cpu import cpu_s  # noqa: E402
from bench_wire import REFERENCE_DECODE_US, reference_decode_us  # noqa: E402

from wattwise_agent import wire  # noqa: E402

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
SAMPLES = 50  # per GPU per batch: 5 s at 10 Hz


@dataclass
class Gpu:
    uuid: str
    index: int
    prev: tuple[int, int] | None = None  # its last reading sent: (t_ms, energy_mj)
    energy_mj: int = 10_000_000_000


class Stream:
    """One node's agent stream: batches that continue each other, as an agent sends them."""

    def __init__(self, node: str, token: str, gpus: int, rng: random.Random) -> None:
        self.node, self.token, self.rng = node, token, rng
        self.stream = uuid.uuid4().hex
        self.seq = 0
        self.gpus = [Gpu(f"GPU-{uuid.uuid4()}", i) for i in range(gpus)]

    def next_envelope(self) -> dict[str, Any]:
        start_ms = T0_MS + self.seq * SAMPLES * 100
        entries = []
        for gpu in self.gpus:
            t_ms = [start_ms + 100 * i for i in range(SAMPLES)]
            power_mw = [self.rng.randint(150_000, 650_000) for _ in range(SAMPLES)]
            energy = []
            for p in power_mw:
                gpu.energy_mj += p // 10
                energy.append(gpu.energy_mj)
            columns = {"t_ms": t_ms, "energy_mj": energy, "power_mw": power_mw, "sm_clock_mhz": [1980] * SAMPLES,
                       "util_pct": [self.rng.randint(0, 100) for _ in range(SAMPLES)], "temp_c": [68] * SAMPLES}
            entries.append(wire.gpu_payload(
                uuid=gpu.uuid, index=gpu.index, name="NVIDIA H100 80GB HBM3", energy_source=wire.ENERGY_COUNTER,
                power_field=wire.POWER_INSTANT, prev=gpu.prev, columns=columns))
            gpu.prev = (t_ms[-1], energy[-1])
        payload = {"run": "bench-group-store", "stream": self.stream, "seq": self.seq, "simulated": True,
                   "window_start_ms": start_ms - 100, "window_end_ms": start_ms + SAMPLES * 100, "gpus": entries,
                   "events": [wire.event_payload(start_ms + 40, "step_end", {"step": self.seq})]}
        self.seq += 1
        return wire.seal(wire.KIND_BATCH, self.node, payload, self.token)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--group", type=int, default=11, help="batches per group (default 11)")
    parser.add_argument("--groups", type=int, default=60, help="groups per round (default 60)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds; the best is printed (default 5)")
    args = parser.parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("set DATABASE_URL=postgres://… (make bench-group-store does)", file=sys.stderr)
        return 2

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection

    from dashboard.telemetry import coalesce, ingest_memo
    from dashboard.telemetry.nodes import register_node

    reference_us = reference_decode_us()
    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    rng = random.Random(1)
    streams = []
    for n in range(args.nodes):
        _, token, _ = register_node(f"bench-{n}", "bench")
        streams.append(Stream(f"bench-{n}", token, args.gpus, rng))
    batches = args.group * args.groups
    print(f"sealing {batches * (args.rounds + 1):,} batches …", file=sys.stderr, flush=True)
    rounds = [[streams[i % len(streams)].next_envelope() for i in range(batches)] for _ in range(args.rounds + 1)]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        backend = int(cursor.fetchone()[0])
    memo = ingest_memo.for_this_worker()  # as manage.py consume_telemetry does (carbon then keeps its memo too)
    per_million: list[float] = []
    for r, envelopes in enumerate(rounds):
        py0, pg0 = time.process_time(), cpu_s(backend)
        for g in range(0, len(envelopes), args.group):
            outcomes = coalesce.ingest_batches(envelopes[g:g + args.group], memo)
            if any(o.status != "stored" for o in outcomes):
                print(f"not stored: {[o.detail for o in outcomes if o.status != 'stored']}", file=sys.stderr)
                return 1
        py_s, pg_s = time.process_time() - py0, cpu_s(backend) - pg0
        samples = batches * args.gpus * SAMPLES
        if r == 0:
            continue  # warm-up: the run, its GPUs and the memo are created in the first round
        per_million.append((py_s + pg_s) / samples * 1e6)
        print(f"  round {r}: {samples:,} samples, app {py_s / samples * 1e6:.2f} + PostgreSQL "
              f"{pg_s / samples * 1e6:.2f} core-s per million", file=sys.stderr, flush=True)
    ratio = reference_us / REFERENCE_DECODE_US
    best = min(per_million)
    print(f"configuration: {args.nodes} nodes × {args.gpus} GPUs × {SAMPLES} readings, groups of {args.group} "
          f"batches, {args.groups} groups a round, best of {args.rounds} rounds")
    print(f"rounds: {' '.join(f'{v:.2f}' for v in per_million)} core-s per million samples")
    print(f"reference: an 8×50 wire decode takes {reference_us:.0f} µs here, {REFERENCE_DECODE_US:.0f} µs on the "
          f"2026-12-03 machine ({ratio:.2f}×)")
    print(f"group store cpu: {best:.2f} core-s per million samples (roughly {best / ratio:.2f} on the 2026-12-03 machine's scale)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
