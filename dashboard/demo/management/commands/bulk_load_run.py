from __future__ import annotations

import argparse
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.demo.fleet_trace import TraceSpec
from dashboard.telemetry.bulkload import BulkLoadError, load_run
from planner.units import MS_PER_S, minute_start_ms
from wattwise_agent.cli_options import parse_duration_s


def _duration_ms(text: str) -> int:
    return round(parse_duration_s(text) * MS_PER_S)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


class Command(BaseCommand):
    help = (
        "Load a synthetic (simulated) finished run of N nodes × G GPUs through the bulk path: the rows are "
        "exactly what ingesting the agents' batches would store, written with COPY in minutes."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("run", help="run name")
        parser.add_argument("--project", required=True, help="project (created if new)")
        parser.add_argument("--nodes", type=_positive, default=2)
        parser.add_argument("--gpus", type=_positive, default=8, help="GPUs per node")
        parser.add_argument("--duration", type=_duration_ms, default=_duration_ms("1h"), help="e.g. 90m, 24h")
        parser.add_argument("--rate", type=float, default=10.0, help="samples per second per GPU")
        parser.add_argument("--ends-ago", type=_duration_ms, default=_duration_ms("1h"),
                            help="how long before now the run ended")
        parser.add_argument("--seed", type=int, default=0)
        parser.add_argument("--power-scale", type=float, default=1.0, help="dynamic power against the baseline")
        parser.add_argument("--clock-cap", type=int, default=1980, help="SM clock cap in MHz (a frequency plan)")
        parser.add_argument("--node-prefix", help="node names are PREFIX-node00, … (default: the project name)")
        parser.add_argument("--tag", action="append", default=[], help="run tag (repeatable)")
        parser.add_argument("--replace", action="store_true", help="delete a run of that name first")
        parser.add_argument("--quiet", action="store_true", help="no progress bar")

    def handle(self, *args: Any, **options: Any) -> None:
        period_ms = round(MS_PER_S / options["rate"])
        duration_ms = options["duration"] // period_ms * period_ms
        if duration_ms <= 0:
            raise CommandError("the run must last at least one sampling period")
        end_ms = int(time.time() * MS_PER_S) - options["ends_ago"]
        prefix = options["node_prefix"] or options["project"]
        trace = TraceSpec(
            nodes=tuple(f"{prefix}-node{i:02d}" for i in range(options["nodes"])),
            gpus_per_node=options["gpus"],
            start_ms=minute_start_ms(end_ms - duration_ms) + 1_234,  # agents start mid-second
            duration_ms=duration_ms,
            period_ms=period_ms,
            seed=options["seed"],
            power_scale=options["power_scale"],
            clock_cap_mhz=options["clock_cap"],
        )
        spec = trace.run_spec(options["project"], options["run"], tags=tuple(options["tag"]))
        try:
            result = load_run(spec, trace.chunks(), replace=options["replace"], progress=not options["quiet"],
                              total_samples=trace.samples)
        except BulkLoadError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write(
            f"run {options['run']!r} (id {result.run_id}) in project {options['project']!r}: {result.samples:,} "
            f"samples (simulated), {result.windows:,} windows, {result.minutes:,} minute rollups, "
            f"{result.batches:,} batches, in {result.seconds:.1f} s"
        )
