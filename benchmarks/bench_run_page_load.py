"""Load benchmark: a finished 8-GPU, 2-hour run's page under 20 concurrent clients, page cache off then on.

Run with ``make bench-run-page`` (DEBUG off; PostgreSQL from ``DATABASE_URL``, Django's cache on Redis from
``CACHE_URL``). What it does:

1. migrates the database and builds, unless it is there already (``--rebuild`` forces it), project
   ``load-8x2h`` with one finished run ``load-a``: one node of 8 GPUs for 2 hours at 10 Hz (5.76 million
   samples, drawn by ``dashboard.demo.fleet_trace`` and stored by the bulk path, as ``make bench-pages``
   does), its carbon figures computed, and a member ``bench-load`` signed in through a stored session;
2. twice, first with ``WATTWISE_PAGE_CACHE=0`` (every request computes the page) then with ``=1``:
   starts gunicorn as the Dockerfile does (``dashboard.wsgi``, ``--workers 3`` sync workers) on a free
   loopback port, warms every worker, then lets ``--clients`` clients (20 threads in 4 processes) request
   the run page back to back for ``--seconds`` (15), each request on a new connection (sync workers close
   it), and stops it;
3. prints for each: requests answered, requests/s, p50/p95/max latency (nearest rank, client side: connect
   to the last byte), errors, and the 1-minute load average when it ended, since other work on the box
   takes CPU from the server. Every response must be a 200 with the run's page in it (an error counts).

Loopback only, bounded: at most ``--seconds`` of load per phase and ``--max-requests`` per phase.
The last line is ``cache on: N requests/s, p95 N ms``.
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

PROJECT, RUN, USER = "load-8x2h", "load-a", "bench-load"
CLIENT_PROCESSES = 4  # the clients' threads are spread over this many processes


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15.0, help="load per phase")
    parser.add_argument("--max-requests", type=int, default=20_000, help="per phase, at most")
    parser.add_argument("--workers", type=int, default=3, help="gunicorn workers (the Dockerfile's 3)")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker (1: sync workers, as deployed)")
    parser.add_argument("--rebuild", action="store_true", help="build the run again even if present")
    parser.add_argument("--only", choices=("off", "on"), help="measure one phase only")
    return parser.parse_args()


def build(rebuild: bool) -> tuple[int, str]:
    """The run's id and a session cookie of a member (the run is built when missing)."""
    from django.contrib.auth import get_user_model
    from django.db import connection, transaction
    from django.test import Client

    from dashboard.demo.fleet_trace import TraceSpec
    from dashboard.projects.models import Project
    from dashboard.telemetry.bulkload import load_run
    from dashboard.telemetry.models import Run
    from planner.carbon.accounting import store_run_carbon
    from planner.units import MS_PER_HOUR, MS_PER_MINUTE, MS_PER_S, minute_start_ms

    now_ms = int(time.time() * MS_PER_S)
    duration_ms = 2 * MS_PER_HOUR
    trace = TraceSpec(nodes=("load-node00",), gpus_per_node=8, duration_ms=duration_ms, seed=21,
                      start_ms=minute_start_ms(now_ms - 3 * MS_PER_HOUR) + 1_234)
    run = Run.objects.filter(project__name=PROJECT, name=RUN, status=Run.Status.FINISHED).first()
    if rebuild or run is None or sum(rg.samples for rg in run.run_gpus.all()) != trace.samples:
        began = time.monotonic()
        result = load_run(trace.run_spec(PROJECT, RUN, tags=("bench",)), trace.chunks(), replace=True)
        run = Run.objects.get(project__name=PROJECT, name=RUN)
        with transaction.atomic():
            store_run_carbon(run)
        with connection.cursor() as cursor:
            for table in ("dashboard_samplewindow", "dashboard_gpuminute", "dashboard_batchreceipt", "dashboard_rungpu"):
                cursor.execute(f"VACUUM ANALYZE {table}")  # the steady state autovacuum would reach
        print(f"{PROJECT}/{RUN}: built {result.samples:,} samples, {result.windows:,} windows in "
              f"{time.monotonic() - began:.0f} s (carbon computed, tables analysed)")
    else:
        print(f"{PROJECT}/{RUN}: present ({trace.samples:,} samples), not rebuilt")
    assert duration_ms % MS_PER_MINUTE == 0
    user, _ = get_user_model().objects.get_or_create(username=USER)
    if user.has_usable_password():
        user.set_unusable_password()
        user.save()
    user.wattwise_projects.set([Project.objects.get(name=PROJECT)])
    client = Client()
    client.force_login(user)  # a session stored in the database, as a browser's sign-in leaves one
    return run.pk, client.cookies["sessionid"].value


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Phase:
    times_ms: list[float]
    errors: int
    seconds: float
    load_average: float
    server_cpu_s: float = 0.0


def server_cpu_s(pid: int) -> float:
    """CPU seconds (user + system) of gunicorn's master and workers so far, from /proc."""
    import psutil

    master = psutil.Process(pid)
    total = 0.0
    for process in [master, *master.children(recursive=True)]:
        try:
            times = process.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def get(port: int, path: str, cookie: str) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Cookie": f"sessionid={cookie}"})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def serve(cache_on: bool, workers: int, threads: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    env = {**os.environ, "WATTWISE_PAGE_CACHE": "1" if cache_on else "0"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "dashboard.wsgi", "--bind", f"127.0.0.1:{port}", "--workers",
         str(workers), "--threads", str(threads), "--log-level", "warning"], cwd=ROOT, env=env,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if get(port, "/healthz", "")[0] == 200:
                return server, port
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("gunicorn did not answer /healthz within 60 s")


def _client_process(port: int, path: str, cookie: str, marker: bytes, threads: int, stop_at: float,
                    max_requests: int, results: Any) -> None:
    """One load process: ``threads`` clients requesting back to back until ``stop_at`` (a monotonic time)."""
    times: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def client() -> None:
        while time.monotonic() < stop_at:
            with lock:
                if len(times) + errors[0] >= max_requests:
                    return
            began = time.perf_counter()
            try:
                status, body = get(port, path, cookie)
                ok = status == 200 and marker in body
            except OSError:
                ok = False
            elapsed = (time.perf_counter() - began) * 1000
            with lock:
                if ok:
                    times.append(elapsed)
                else:
                    errors[0] += 1

    workers = [threading.Thread(target=client) for _ in range(threads)]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    results.send((times, errors[0]))
    results.close()


def load(port: int, path: str, cookie: str, args: argparse.Namespace, marker: bytes) -> Phase:
    """``--clients`` clients spread over a few processes (so the clients' own Python is not one GIL)."""
    context = multiprocessing.get_context("fork")
    processes = max(1, min(CLIENT_PROCESSES, args.clients))
    began = time.monotonic()
    stop_at = began + args.seconds
    running = []
    for i in range(processes):
        threads = args.clients // processes + (1 if i < args.clients % processes else 0)
        receiver, sender = context.Pipe(duplex=False)
        process = context.Process(target=_client_process, args=(
            port, path, cookie, marker, threads, stop_at, args.max_requests // processes, sender))
        process.start()
        running.append((process, receiver))
    times: list[float] = []
    errors = 0
    for process, receiver in running:
        found, failed = receiver.recv()
        process.join()
        times += found
        errors += failed
    return Phase(times, errors, time.monotonic() - began, os.getloadavg()[0])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)] if ordered else float("nan")


def measure(label: str, cache_on: bool, path: str, cookie: str, args: argparse.Namespace, marker: bytes) -> Phase:
    server, port = serve(cache_on, args.workers, args.threads)
    try:
        # Every worker imports the URLconf on its first request (seconds): warm them all, then the page.
        for _ in range(2 * args.workers):
            get(port, path, cookie)
        before = server_cpu_s(server.pid)
        phase = load(port, path, cookie, args, marker)
        phase.server_cpu_s = server_cpu_s(server.pid) - before
    finally:
        server.terminate()
        server.wait(timeout=30)
    rate = len(phase.times_ms) / phase.seconds
    print(f"cache {label}: {len(phase.times_ms):,} requests in {phase.seconds:.1f} s = {rate:.1f} requests/s; "
          f"p50 {percentile(phase.times_ms, 50):.0f} ms, p95 {percentile(phase.times_ms, 95):.0f} ms, "
          f"max {max(phase.times_ms, default=float('nan')):.0f} ms; {phase.errors} errors; "
          f"load average {phase.load_average:.2f} at the end; gunicorn CPU {phase.server_cpu_s:.1f} s = "
          f"{phase.server_cpu_s * 1000 / max(len(phase.times_ms), 1):.1f} ms per request", flush=True)
    return phase


def main() -> int:
    args = parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("set DATABASE_URL=postgres://… (make bench-run-page does)", file=sys.stderr)
        return 2
    if not os.environ.get("CACHE_URL", "").startswith("redis"):
        print("set CACHE_URL=redis://… (make bench-run-page does)", file=sys.stderr)
        return 2
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    run_pk, cookie = build(args.rebuild)
    cache.clear()  # the "on" phase starts cold: its warm-up requests fill the cache
    path = f"/runs/{run_pk}/"
    marker = b'id="gpus-table"'
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} before; gunicorn "
          f"{args.workers} workers × {args.threads} thread(s); {args.clients} clients for {args.seconds:g} s per phase; GET {path}",
          flush=True)
    phases = {}
    for label, on in (("off", False), ("on", True)):
        if args.only in (None, label):
            phases[label] = measure(label, on, path, cookie, args, marker)
    failed = sum(p.errors for p in phases.values())
    if "on" in phases:
        on_phase = phases["on"]
        print(f"target: >= 100 requests/s, p95 < 300 ms with the cache on; cache on: "
              f"{len(on_phase.times_ms) / on_phase.seconds:.0f} requests/s, p95 {percentile(on_phase.times_ms, 95):.0f} ms")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
