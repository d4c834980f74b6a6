"""A large intensity upload is imported by a real worker in the background: streamed in chunks (the worker's
memory stays near where it started, whatever the file's size), its progress visible while its rows are
still uncommitted, every row stored; a bad line at the very end leaves nothing behind (issue 15, item 5)."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest
from django.core.files.uploadedfile import UploadedFile

from benchmarks.bench_import import csv_lines, write_csv
from planner.carbon.import_jobs import store_upload
from planner.carbon.models import ImportJob, IntensityImport, IntensityRow
from tests.worker_process import flush, publisher, worker

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

LARGE_ROWS = 80_000  # ~5.5 MB: read whole, as before, its rows and records alone took hundreds of MB
MEMORY_BOUND_MB = 40  # a few chunks' worth of rows (planner.carbon.streaming.CHUNK_ROWS)
TIMEOUT_S = 120


def queue(redis_url: str, path: Path, name: str) -> ImportJob:
    """What the data page does with an upload: store it under WATTWISE_IMPORT_DIR, queue a job."""
    with path.open("rb") as handle:
        stored = store_upload(UploadedFile(handle, name=name, size=path.stat().st_size))
    job = ImportJob.objects.create(filename=name, path=str(stored), size_bytes=stored.stat().st_size)
    publisher(redis_url).send_task("carbon.import_job", args=[job.pk])
    return job


def follow(job: ImportJob, process: psutil.Process) -> tuple[float, list[int]]:
    """Poll the job until it ends (bounded); return the worker's peak memory (MB) and the progress seen."""
    peak_mb, seen = 0.0, []
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        job.refresh_from_db()
        peak_mb = max(peak_mb, process.memory_info().rss / 2**20)
        if job.state == ImportJob.State.RUNNING and job.rows_read:
            seen.append(job.rows_read)
        if job.finished:
            return peak_mb, seen
        time.sleep(0.1)
    raise AssertionError(f"import job {job.pk} still {job.state} after {TIMEOUT_S} s")


def test_a_large_upload_is_streamed_by_the_worker_with_flat_memory_and_visible_progress(
    postgres, redis_url, tmp_path
):
    flush(redis_url)
    small, large, broken = tmp_path / "small.csv", tmp_path / "large.csv", tmp_path / "broken.csv"
    write_csv(small, 2_000, zone_prefix="WARM")
    write_csv(large, LARGE_ROWS)
    # Two chunks and more of good rows, then a last line whose "Data estimated" is no boolean.
    lines = list(csv_lines(12_000, zone_prefix="BAD"))
    broken.write_text("".join(lines) + lines[-1].replace(",false,", ",maybe,"))

    with worker(redis_url) as celery:
        process = psutil.Process(celery.pid)
        warm_up = queue(redis_url, small, "WARM_2025_hourly.csv")  # loads every module the import needs
        follow(warm_up, process)
        baseline_mb = process.memory_info().rss / 2**20
        job = queue(redis_url, large, "BENCH_2025_hourly.csv")
        peak_mb, seen = follow(job, process)
        bad = queue(redis_url, broken, "BAD_2025_hourly.csv")
        follow(bad, process)

    assert job.state == ImportJob.State.DONE, job.message
    assert IntensityRow.objects.filter(zone__startswith="BENCH-").count() == LARGE_ROWS == job.rows_read
    assert f"{LARGE_ROWS} rows added" in job.message and job.progress_fraction == 1.0
    assert seen and min(seen) < LARGE_ROWS, "no progress was visible while the import ran"
    assert peak_mb - baseline_mb < MEMORY_BOUND_MB, (baseline_mb, peak_mb)
    # The bad file: a clear error naming the line, and not one of its first 12,000 rows stored.
    assert bad.state == ImportJob.State.FAILED
    assert "line 12002" in bad.message and "Nothing was imported." in bad.message, bad.message
    assert not IntensityRow.objects.filter(zone__startswith="BAD-").exists()
    assert IntensityImport.objects.count() == 2  # the warm-up and the large file
    assert not Path(job.path).exists() and not Path(bad.path).exists()  # uploads removed once imported
