"""Page benchmark at fleet scale: how long the server spends on the pages of a 64-GPU, 24-hour run.

Run with ``make bench-pages`` (DEBUG off, the benchmark database). What it does:

1. migrates the benchmark database;
2. builds, unless it is already there with the right shape (``--rebuild`` forces it), a project
   ``fleet`` with three finished runs ``fleet-a``, ``fleet-b`` and ``fleet-c`` of 8 nodes × 8 GPUs ×
   24 h at 10 Hz (about 55 million samples each; b is an hour shorter and draws more power, c runs
   under an SM clock cap), through the bulk path (``dashboard.telemetry.bulkload``, COPY), plus a user ``bench``
   who is a member; prints the build time and table sizes;
3. times the pages through Django's test client as a logged-in user: the run page, one GPU's page, the
   compare page of the three runs and the first bytes of the run's minute CSV. The process is warmed
   first (``/healthz`` imports the URLconf, which costs seconds once); then each page gets 3 warm-up
   requests (the first one is shown as "first": template loading, the carbon figures if missing),
   ``--requests`` timed ones, and one more counting its SQL queries.

Times are wall time inside this process, from the request to the response's (first) bytes: Django's
middleware, views, queries and template rendering, no network or browser. p95 is the nearest-rank
95th percentile. The last line is ``run page p95: N ms``.

Smaller fleets for a quick look: ``--nodes 2 --gpus-per-node 4 --hours 1`` (each shape has its own
project, ``fleet-2x4x1h``, so shapes never mix). ``--profile`` adds a cProfile top 20 (cumulative) and
the slowest queries of one request of the run and compare pages.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import math
import os
import pstats
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")

PLUMBING = r"^(?!.*(django/test/|django/core/handlers/|django/utils/deprecation|whitenoise/|bench_pages|decorators))"
TABLES = ("dashboard_samplewindow", "dashboard_gpuminute", "dashboard_batchreceipt", "dashboard_rungpu")


@dataclass(frozen=True)
class FleetRun:
    name: str
    hours_less: float  # shorter than the shape's hours by this many
    ends_ago_h: float
    seed: int
    power_scale: float = 1.0
    clock_cap_mhz: int = 1980


# Different enough that comparing them means something: b stopped an hour early and ran a hungrier
# model; c ran under a frequency plan (clock cap), drawing less power over longer steps.
FLEET = (
    FleetRun("fleet-a", 0.0, ends_ago_h=74, seed=11),
    FleetRun("fleet-b", 1.0, ends_ago_h=49, seed=12, power_scale=1.06),
    FleetRun("fleet-c", 0.0, ends_ago_h=2, seed=13, clock_cap_mhz=1755),
)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=8)
    parser.add_argument("--gpus-per-node", type=int, default=8)
    parser.add_argument("--hours", type=float, default=24.0, help="length of fleet-a and fleet-c")
    parser.add_argument("--requests", type=int, default=30, help="timed requests per page")
    parser.add_argument("--rebuild", action="store_true", help="build the runs again even if present")
    parser.add_argument("--profile", action="store_true",
                        help="cProfile top 20 and slowest queries of one run-page and compare-page request")
    return parser.parse_args()


def project_name(args: argparse.Namespace) -> str:
    if (args.nodes, args.gpus_per_node, args.hours) == (8, 8, 24.0):
        return "fleet"
    return f"fleet-{args.nodes}x{args.gpus_per_node}x{args.hours:g}h"


def trace_for(args: argparse.Namespace, run: FleetRun, now_ms: int) -> Any:
    from dashboard.demo.fleet_trace import TraceSpec
    from planner.units import MS_PER_HOUR, MS_PER_MINUTE, minute_start_ms

    hours = args.hours - run.hours_less * args.hours / 24
    duration_ms = round(hours * MS_PER_HOUR) // MS_PER_MINUTE * MS_PER_MINUTE  # whole minutes
    end_ms = now_ms - round(run.ends_ago_h * args.hours / 24 * MS_PER_HOUR)
    return TraceSpec(
        nodes=tuple(f"{project_name(args)}-node{i:02d}" for i in range(args.nodes)),
        gpus_per_node=args.gpus_per_node,
        start_ms=minute_start_ms(end_ms - duration_ms) + 1_234,
        duration_ms=duration_ms,
        seed=run.seed,
        power_scale=run.power_scale,
        clock_cap_mhz=run.clock_cap_mhz,
    )


def present(project: str, name: str, gpus: int, samples: int) -> bool:
    from django.db.models import Count, Sum

    from dashboard.telemetry.models import Run

    run = (Run.objects.filter(project__name=project, name=name, status=Run.Status.FINISHED)
           .annotate(gpus=Count("run_gpus"), samples=Sum("run_gpus__samples")).first())
    return run is not None and run.gpus == gpus and run.samples == samples


def build(args: argparse.Namespace) -> None:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from dashboard.projects.models import Project
    from dashboard.telemetry.bulkload import load_run
    from planner.units import MS_PER_S

    project = project_name(args)
    now_ms = int(time.time() * MS_PER_S)
    built = False
    for run in FLEET:
        trace = trace_for(args, run, now_ms)
        if not args.rebuild and present(project, run.name, len(trace.nodes) * trace.gpus_per_node, trace.samples):
            print(f"{project}/{run.name}: present ({trace.samples:,} samples), not rebuilt")
            continue
        result = load_run(trace.run_spec(project, run.name, tags=("bench",)), trace.chunks(), replace=True,
                          progress=True, total_samples=trace.samples)
        built = True
        print(f"{project}/{run.name}: built {result.samples:,} samples, {result.windows:,} windows, "
              f"{result.minutes:,} minute rows, {result.batches:,} batches in {result.seconds:.0f} s "
              f"({result.samples / result.seconds:,.0f} samples/s)")
    user, _ = get_user_model().objects.get_or_create(username="bench")
    if user.has_usable_password():
        user.set_unusable_password()
        user.save()
    # Only this shape's project, so bare run names on the compare page are unambiguous.
    user.wattwise_projects.set([Project.objects.get(name=project)])
    if built:
        began = time.monotonic()
        with connection.cursor() as cursor:
            for table in TABLES:
                cursor.execute(f"VACUUM ANALYZE {table}")  # the steady state autovacuum would reach
        print(f"vacuum analyze: {time.monotonic() - began:.0f} s")
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute("SELECT pg_total_relation_size(%s), pg_relation_size(%s), "
                           "(SELECT reltuples::bigint FROM pg_class WHERE relname = %s)", [table, table, table])
            total, heap, rows = cursor.fetchone()
            print(f"  {table:<24} {total / 2**30:7.2f} GiB ({heap / 2**30:.2f} GiB heap), ~{rows:,} rows")
        cursor.execute("SELECT pg_database_size(current_database())")
        print(f"  database                 {cursor.fetchone()[0] / 2**30:7.2f} GiB")


# --- measuring ------------------------------------------------------------------------------------


def fetch(client: Any, url: str) -> tuple[int, float]:
    """Status and milliseconds to the response's first bytes (all of them for a plain response)."""
    began = time.perf_counter()
    response = client.get(url)
    if response.streaming:
        next(iter(response.streaming_content), b"")
    else:
        _ = response.content
    elapsed = (time.perf_counter() - began) * 1000
    if response.streaming:
        response.close()
    return response.status_code, elapsed


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure(client: Any, label: str, url: str, requests: int) -> float | None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    status, first = fetch(client, url)
    if status != 200:
        print(f"{label}: {url} answered {status}; skipped")
        return None
    for _ in range(2):
        fetch(client, url)
    times = [fetch(client, url)[1] for _ in range(requests)]
    with CaptureQueriesContext(connection) as queries:
        fetch(client, url)
    sql_ms = sum(float(q["time"]) for q in queries.captured_queries) * 1000
    p95 = percentile(times, 95)
    print(f"{label:<26} p50 {percentile(times, 50):8.1f} ms  p95 {p95:8.1f} ms  max {max(times):8.1f} ms  "
          f"first {first:8.1f} ms  {len(queries.captured_queries):3d} queries ({sql_ms:.0f} ms in SQL)  {url}")
    return p95


def profile(client: Any, label: str, url: str) -> None:
    """cProfile top 20 by cumulative time, and the slowest queries with their row counts."""
    from django.db import connection

    queries: list[tuple[float, int, str]] = []

    def timed(execute: Any, sql: str, params: Any, many: bool, context: dict[str, Any]) -> Any:
        began = time.perf_counter()
        result = execute(sql, params, many, context)
        queries.append(((time.perf_counter() - began) * 1000, context["cursor"].rowcount, sql))
        return result

    profiler = cProfile.Profile()
    with connection.execute_wrapper(timed):
        profiler.enable()
        status, elapsed = fetch(client, url)
        profiler.disable()
    print(f"\n--- profile: {label} ({url}): HTTP {status}, {elapsed:.0f} ms under the profiler, "
          f"{len(queries)} queries, {sum(q[0] for q in queries):.0f} ms executing them")
    print("slowest queries (ms, rows, SQL):")
    for ms, rows, sql in sorted(queries, reverse=True)[:8]:
        print(f"  {ms:8.1f} {rows:>9} {sql[:220]}")
    for order, title, count in (("cumulative", "top 20 by cumulative time", 20), ("tottime", "top 15 by own time", 15)):
        out = io.StringIO()
        # The request plumbing (test client, middleware, decorators) tops every cumulative list: leave it out.
        pstats.Stats(profiler, stream=out).sort_stats(order).print_stats(PLUMBING, count)
        lines = [line for line in out.getvalue().splitlines() if line.strip()]
        start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
        print(f"{title}:")
        print("\n".join(line.replace(str(ROOT) + "/", "") for line in lines[start:]))


def main() -> int:
    args = parse_args()
    if not os.environ.get("DATABASE_URL", "").startswith("postgres"):
        print("set DATABASE_URL=postgres://… (make bench-pages does)", file=sys.stderr)
        return 2
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.test import Client

    from dashboard.telemetry.models import Run, RunGpu

    call_command("migrate", verbosity=0)
    began = time.monotonic()
    build(args)
    print(f"data ready after {time.monotonic() - began:.0f} s")
    project = project_name(args)
    runs = {r.name: r for r in Run.objects.filter(project__name=project)}
    first = runs["fleet-a"]
    gpu = RunGpu.objects.filter(run=first).order_by("gpu__node__name", "gpu__index").first()
    assert gpu is not None
    client = Client()
    client.force_login(get_user_model().objects.get(username="bench"))
    began = time.monotonic()
    fetch(client, "/healthz")
    print(f"process warm-up (URLconf imports): {(time.monotonic() - began) * 1000:.0f} ms")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}; DEBUG={settings.DEBUG}; "
          f"{args.requests} timed requests per page after 3 warm-ups")
    run_url = f"/runs/{first.pk}/"
    compare_url = "/compare/?runs=" + ",".join(r.name for r in FLEET)
    run_p95 = measure(client, "run page", run_url, args.requests)
    measure(client, "GPU page", f"/runs/{first.pk}/gpus/{gpu.pk}/", args.requests)
    compared = measure(client, "compare page (3 runs)", compare_url, args.requests)
    if compared is None:
        print("  (the compare page is not ready in this tree; nothing measured for it)")
    measure(client, "minute CSV, first bytes", f"/runs/{first.pk}/samples.csv?resolution=minute", args.requests)
    if args.profile:
        profile(client, "run page", run_url)
        if compared is not None:
            profile(client, "compare page", compare_url)
    print(f"targets: run page p95 < 300 ms, compare p95 < 1000 ms; load average now {os.getloadavg()[0]:.1f}")
    print(f"run page p95: {round(run_p95) if run_p95 is not None else 'n/a'} ms")
    return 0 if run_p95 is not None else 1


if __name__ == "__main__":
    sys.exit(main())
