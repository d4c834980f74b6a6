"""Benchmark: importing a large Electricity Maps CSV in constant memory.

Run ``make bench-import`` (PostgreSQL at ``BENCH_DATABASE_URL``; ``BENCH_ARGS="--rows 100000"`` and the like
pass options). It writes a valid hourly export of ``--rows`` rows (default 906,660: ~60 MB, many zones of a
year each) to a temporary file, imports it as a background job does (``planner.carbon.streaming.import_path``,
streamed in chunks inside one transaction, progress reported per chunk), and prints the rows, the file's
size, the seconds taken and the growth of the process's peak resident memory over the import (the file is
never read whole: the growth stays near a chunk's worth, whatever the file's size). The rows it stored are
deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a script from a checkout: the app's packages (the agent is installed with the app, `make install`).
# Never agents/ itself: its build metadata there would shadow the installed agent's (tests import this module).
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

HEADER = (
    "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),"
    "Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),"
    "Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method"
)
HOURS_PER_ZONE = 8760
START = datetime(2025, 1, 1, tzinfo=UTC)


def csv_lines(rows: int, *, zone_prefix: str = "BENCH") -> Iterator[str]:
    """A valid Electricity Maps hourly export: zones of a year each, in time order, ``rows`` rows in all."""
    yield HEADER + "\n"
    for n in range(rows):
        zone, hour = divmod(n, HOURS_PER_ZONE)
        when = START + timedelta(hours=hour)
        lifecycle = 100.0 + (n * 7919) % 600 / 1.5
        yield (f"{when:%Y-%m-%d %H:%M:%S},XX,Z{zone:03d},{zone_prefix}-{zone:03d},{lifecycle * 0.8:.1f},"
               f"{lifecycle:.1f},{n % 100},{n % 90},bench,false,\n")


def write_csv(path: Path, rows: int, **options: str) -> int:
    """Write the export to ``path`` line by line (never whole in memory); return its size in bytes."""
    with path.open("w", encoding="utf-8", newline="") as out:
        out.writelines(csv_lines(rows, **options))
    return path.stat().st_size


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=906_660)
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "dashboard.settings")
    import django

    django.setup()
    from django.core.management import call_command

    from planner.carbon.imports import ImportOptions
    from planner.carbon.models import IntensityImport, IntensityRow
    from planner.carbon.streaming import import_path

    call_command("migrate", "--noinput", verbosity=0)
    IntensityRow.objects.filter(zone__startswith="BENCH-").delete()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "BENCH_2025_hourly.csv"
        size = write_csv(path, args.rows)
        before_mb = peak_rss_mb()
        started = time.perf_counter()
        result = import_path(path, path.name, ImportOptions(via=IntensityImport.Via.COMMAND))
        seconds = time.perf_counter() - started
        growth_mb = peak_rss_mb() - before_mb
    assert result.rows == result.created == args.rows, result
    stored = IntensityRow.objects.filter(zone__startswith="BENCH-").count()
    IntensityRow.objects.filter(zone__startswith="BENCH-").delete()
    IntensityImport.objects.filter(rows__isnull=True, via=IntensityImport.Via.COMMAND, filename=path.name).delete()
    print(f"rows {result.rows:,} (stored {stored:,}), file {size / 1e6:.1f} MB, {seconds:.1f} s "
          f"({result.rows / seconds:,.0f} rows/s), peak memory +{growth_mb:.1f} MB (from {before_mb:.1f} MB)")


if __name__ == "__main__":
    main()
