"""End-to-end ingest benchmark: simulated agents publish → Redis → Celery worker → PostgreSQL.

Run with ``make bench-ingest`` (it starts the services and points DATABASE_URL and CELERY_BROKER_URL at a
benchmark database and Redis DB). What it does:

1. migrates and empties the benchmark database, registers the nodes, empties the broker DB;
2. starts a real Celery worker (``celery -A dashboard worker``) in a subprocess;
3. starts one agent per node (``python -m agents stream --backend simulated --fast``), each replaying a
   past period as fast as it can, so the publishers push as hard as this machine allows;
4. samples the stored sample count every second until everything sent is stored;
5. checks nothing was lost: stored samples equal the agents' ``samples_sent``, no rejections, and every
   GPU's stored energy equals the simulator's ground truth.

The last line is ``ingest: N samples/s``: samples stored divided by the time from the first publish to
the last sample stored. Agents and worker share this machine's cores, as the figure's caveat says.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=4, help="simulated agents (one process each)")
    parser.add_argument("--gpus", type=int, default=8, help="GPUs per node")
    parser.add_argument("--duration", default="3h", help="simulated time each agent replays (default 3h)")
    parser.add_argument("--rate", type=float, default=10.0, help="samples per second per GPU (agent default 10)")
    parser.add_argument("--window", default="5s", help="agent batch window (agent default 5s)")
    parser.add_argument("--pool", default="prefork", choices=["prefork", "threads", "solo"])
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--prefetch", type=int, default=8, help="worker prefetch multiplier")
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--prefill", action="store_true",
                        help="publish everything first, then start the worker: measures how fast the worker "
                             "drains Redis into PostgreSQL when it has the machine to itself")
    return parser.parse_args()


def stored_samples() -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT COALESCE(SUM(samples), 0) FROM dashboard_batchreceipt")
        return int(cursor.fetchone()[0])


def rate_windows(points: list[tuple[float, int]], width_s: float) -> list[float]:
    """Samples/s over consecutive windows of ``width_s`` seconds."""
    rates, start = [], 0
    for i, (t, count) in enumerate(points):
        if t - points[start][0] >= width_s:
            rates.append((count - points[start][1]) / (t - points[start][0]))
            start = i
    return rates


def main() -> int:
    args = parse_args()
    database_url, broker_url = os.environ.get("DATABASE_URL", ""), os.environ.get("CELERY_BROKER_URL", "")
    if not database_url.startswith("postgres") or not broker_url.startswith("redis"):
        print("set DATABASE_URL=postgres://… and CELERY_BROKER_URL=redis://… (make bench-ingest does)", file=sys.stderr)
        return 2

    import django

    django.setup()
    import redis
    from django.core.management import call_command

    from dashboard.telemetry.models import Rejection, RunGpu
    from dashboard.telemetry.nodes import register_node

    call_command("migrate", verbosity=0)
    call_command("flush", "--noinput", verbosity=0)
    redis.Redis.from_url(broker_url).flushdb()
    tokens = {}
    for n in range(args.nodes):
        _, tokens[f"bench-{n}"], _ = register_node(f"bench-{n}", "bench")

    worker_env = {**os.environ, "CELERY_WORKER_PREFETCH_MULTIPLIER": str(args.prefetch)}
    worker_command = [sys.executable, "-m", "celery", "-A", "dashboard", "worker", "-Q", "telemetry", "-P", args.pool,
                      "-c", str(args.concurrency), "-l", "WARNING", "--without-gossip", "--without-mingle",
                      "--without-heartbeat"]
    start = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0).isoformat()
    spool = tempfile.mkdtemp(prefix="wattwise-bench-spool-")
    worker = None
    if not args.prefill:
        worker = subprocess.Popen(worker_command, cwd=ROOT, env=worker_env, start_new_session=True)
        time.sleep(3)  # let the worker connect before the clock starts
    agents = []
    t0 = time.monotonic()
    for node, token in tokens.items():
        command = [sys.executable, "-m", "agents", "stream", "--backend", "simulated", "--run", "bench",
                   "--node", node, "--gpus", str(args.gpus), "--duration", args.duration, "--start", start, "--fast",
                   "--rate", str(args.rate), "--window", args.window, "--broker", broker_url, "--quiet",
                   "--spool-dir", f"{spool}/{node}", "--seed", node.rsplit("-", 1)[1]]
        agents.append(subprocess.Popen(command, cwd=ROOT, env={**os.environ, "WATTWISE_TOKEN": token},
                                       stdout=subprocess.PIPE, text=True))
    if args.prefill:
        for a in agents:
            a.wait()
        print(f"prefilled the broker in {time.monotonic() - t0:.1f} s; starting the worker", file=sys.stderr)
        worker = subprocess.Popen(worker_command, cwd=ROOT, env=worker_env, start_new_session=True)
        t0 = time.monotonic()
    points: list[tuple[float, int]] = [(0.0, 0)]
    lines: list[dict] = []
    published_at = None
    try:
        while time.monotonic() - t0 < args.timeout:
            time.sleep(1.0)
            points.append((time.monotonic() - t0, stored_samples()))
            if published_at is None and all(a.poll() is not None for a in agents):
                published_at = time.monotonic() - t0
                for a in agents:
                    assert a.returncode == 0, "an agent failed"
                    lines.append(json.loads(a.stdout.read().strip().splitlines()[-1]))  # type: ignore[union-attr]
            if lines and points[-1][1] >= sum(line["samples_sent"] for line in lines):
                break
            print(f"  {points[-1][0]:6.1f} s  stored {points[-1][1]:>10,}", file=sys.stderr, flush=True)
    finally:
        assert worker is not None
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=60)
        for a in agents:
            if a.poll() is None:
                a.kill()

    sent = sum(line["samples_sent"] for line in lines)
    elapsed, stored = points[-1]
    truth = {uuid: j for line in lines for uuid, j in line["energy_j"].items()}
    energy = dict(RunGpu.objects.values_list("gpu__uuid", "energy_j"))
    worst = max(abs(energy.get(uuid, 0.0) - j) / j for uuid, j in truth.items()) if truth else float("nan")
    windows = rate_windows(points, 10.0)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end (1 min)")
    print(f"configuration: {args.nodes} agents × {args.gpus} GPUs, {args.rate:g} Hz, {args.window} windows "
          f"({int(args.gpus * args.rate * float(args.window.rstrip('s')))} samples/batch), worker "
          f"-P {args.pool} -c {args.concurrency}, prefetch {args.prefetch}")
    if args.prefill:
        print(f"worker drained the prefilled broker in {elapsed:.1f} s (from worker start, incl. its start-up)")
    else:
        print(f"publishing took {published_at or float('nan'):.1f} s; everything stored after {elapsed:.1f} s")
    print(f"samples sent {sent:,}, stored {stored:,}, lost {sent - stored:,}, rejected messages "
          f"{Rejection.objects.count()}")
    print(f"energy vs simulator ground truth: worst GPU relative error {worst:.2e} over {len(truth)} GPUs")
    print("stored samples/s per 10 s: " + " ".join(f"{r:,.0f}" for r in windows))
    if len(windows) >= 6:
        sustained = min(sum(windows[i:i + 6]) / 6 for i in range(len(windows) - 5))
        print(f"lowest 60 s average: {sustained:,.0f} samples/s")
    ok = stored == sent and sent > 0 and worst < 1e-6 and not Rejection.objects.exists()
    print(f"nothing lost: {'yes' if ok else 'NO'}")
    print(f"ingest: {stored / elapsed:,.0f} samples/s")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
