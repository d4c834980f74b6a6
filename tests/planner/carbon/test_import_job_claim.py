"""A redelivered import message (the broker hands an unacknowledged message out again after its visibility
timeout, even while the first worker is still importing) leaves the job to the worker that holds it; once
that worker lets go (done, or its connection died with it), a delivery imports it."""

from __future__ import annotations

import psycopg
import pytest
from django.db import connection

from benchmarks.bench_import import csv_lines
from planner.carbon.import_jobs import JOB_LOCK_CLASS, run_job, store_upload
from planner.carbon.models import ImportJob, IntensityRow

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

CSV = "".join(csv_lines(2)).encode()  # a valid Electricity Maps export of two hours


def other_worker() -> psycopg.Connection:
    """A second database session, as another worker process has."""
    settings = connection.settings_dict
    return psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None,
                           port=settings["PORT"] or None, password=settings["PASSWORD"] or None, autocommit=True)


def test_a_job_another_worker_is_importing_is_left_to_it_then_imported_once_it_lets_go(postgres, tmp_path, settings):
    from django.core.files.uploadedfile import SimpleUploadedFile

    settings.WATTWISE_IMPORT_DIR = str(tmp_path)
    stored = store_upload(SimpleUploadedFile("em.csv", CSV))
    job = ImportJob.objects.create(filename="em.csv", path=str(stored), size_bytes=len(CSV))

    with other_worker() as busy:
        assert busy.execute("SELECT pg_try_advisory_lock(%s, %s)", [JOB_LOCK_CLASS, job.pk]).fetchone()[0]
        assert run_job(job.pk) == {"job": job.pk, "state": "importing elsewhere"}
        job.refresh_from_db()
        assert job.state == ImportJob.State.QUEUED and stored.exists() and not IntensityRow.objects.exists()

    # The other worker's session ended (as when it dies): its lock went with it.
    result = run_job(job.pk)
    job.refresh_from_db()
    assert result["state"] == job.state == ImportJob.State.DONE, job.message
    assert IntensityRow.objects.count() == 2 and not stored.exists()
