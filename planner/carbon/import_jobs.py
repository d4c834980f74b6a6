"""Uploaded files imported in the background: stored under ``WATTWISE_IMPORT_DIR``, imported by a worker
(``carbon.import_job``) in constant memory (:mod:`planner.carbon.streaming`), progress written as it goes.

A web request only stores the file and queues the job, so a 60 MB file no longer outlives the web
worker's timeout. The job's rows are written in one transaction, which a page cannot see into; its
progress is written on a database connection of its own (autocommitted) so the page can poll it
(``/carbon/data/jobs/<id>/``). On SQLite, whose writers lock the whole file, progress is written only at
the end. A job ends ``done`` (its message says what changed) or ``failed`` (why; nothing was imported),
and its file is removed either way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.utils import timezone

from dashboard.projects.models import Project, Visitor, signed_in
from dashboard.web.session_lock import try_session_lock
from planner.carbon.imports import ImportOptions
from planner.carbon.models import ImportJob, IntensityImport
from planner.carbon.streaming import import_path
from planner.grid_carbon.importers import CarbonImportError
from planner.grid_carbon.records import Basis

log = logging.getLogger(__name__)


def store_upload(upload: UploadedFile) -> Path:
    """Copy the upload, chunk by chunk, to a new file under ``WATTWISE_IMPORT_DIR``."""
    directory = Path(settings.WATTWISE_IMPORT_DIR)
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{uuid.uuid4().hex}.upload"
    with path.open("wb") as out:
        for chunk in upload.chunks():
            out.write(chunk)
    return path


def submit(
    upload: UploadedFile, *, project: Project | None, user: Visitor | None, zone: str = "",
    basis: Basis = "lifecycle", timezone_name: str = "UTC",
) -> ImportJob:
    """Store the upload and queue its import (once the job row is committed)."""
    path = store_upload(upload)
    job = ImportJob.objects.create(
        project=project, requested_by=signed_in(user), filename=(upload.name or "upload")[:255], path=str(path),
        size_bytes=path.stat().st_size, zone=zone, basis=basis, timezone=timezone_name,
    )
    transaction.on_commit(partial(_queue, job.pk), robust=True)
    return job


def _queue(job_id: int) -> None:
    from planner.carbon.tasks import import_job

    try:
        import_job.apply_async((job_id,))
    except Exception:  # the broker is down: say so on the job, never leave it "queued" for ever
        log.warning("could not queue carbon.import_job(%s)", job_id, exc_info=True)
        _end(ImportJob.objects.get(pk=job_id), ImportJob.State.FAILED,
             "could not queue the import (the task queue is unreachable); nothing was imported: upload it again")


class ProgressWriter:
    """Writes a job's progress outside the import's transaction, on a connection of its own."""

    def __init__(self, job_id: int) -> None:
        self.job_id = job_id
        self.table = connection.ops.quote_name(ImportJob._meta.db_table)
        self.side = None if connection.vendor == "sqlite" else connections.create_connection(DEFAULT_DB_ALIAS)

    def __call__(self, rows: int, bytes_read: int) -> None:
        if self.side is None:
            return
        try:
            with self.side.cursor() as cursor:
                cursor.execute(f"UPDATE {self.table} SET rows_read = %s, bytes_read = %s WHERE id = %s",
                               [rows, bytes_read, self.job_id])
        except DatabaseError:  # progress is a courtesy: the import goes on without it
            log.warning("could not record the progress of import job %s", self.job_id, exc_info=True)
            self.close()

    def close(self) -> None:
        if self.side is not None:
            self.side.close()
            self.side = None


# The advisory-lock class of import jobs (``pg_try_advisory_lock(class, job id)``): "WI".
JOB_LOCK_CLASS = 0x5749


@contextmanager
def claimed(job_id: int) -> Iterator[bool]:
    """Whether this delivery may import the job. The broker hands an unacknowledged message out again once
    its visibility timeout passes, even while the first worker is still importing a large file; that copy
    must leave the job alone. A session advisory lock on PostgreSQL: released when the import ends, or when
    a dead worker's connection closes, so a redelivery after a crash still imports. (SQLite runs tasks in
    process: one delivery each.)"""
    with try_session_lock((JOB_LOCK_CLASS, job_id & 0x7FFFFFFF), f"import job {job_id}") as mine:
        yield mine


def run_job(job_id: int) -> dict[str, Any]:
    """Import a job's file (a job that already ended is left alone; one redelivered after its worker died
    starts again, since its transaction was rolled back; one redelivered while another worker imports it
    is left to that worker)."""
    with claimed(job_id) as mine:
        if not mine:
            log.info("import job %s is being imported by another worker; this delivery leaves it", job_id)
            return {"job": job_id, "state": "importing elsewhere"}
        return _run_claimed(job_id)


def _run_claimed(job_id: int) -> dict[str, Any]:
    job = ImportJob.objects.filter(
        pk=job_id, state__in=[ImportJob.State.QUEUED, ImportJob.State.RUNNING]
    ).select_related("project", "requested_by").first()
    if job is None:
        return {"job": job_id, "state": "gone or ended"}
    ImportJob.objects.filter(pk=job.pk).update(state=ImportJob.State.RUNNING, started_at=timezone.now(),
                                               rows_read=0, bytes_read=0)
    progress = ProgressWriter(job.pk)
    try:
        options = ImportOptions(zone=job.zone or None, basis=job.basis,  # type: ignore[arg-type]
                                project=job.project, timezone_name=job.timezone, user=job.requested_by,
                                via=IntensityImport.Via(job.via))
        result = import_path(Path(job.path), job.filename, options, progress=progress)
    except CarbonImportError as exc:
        _end(job, ImportJob.State.FAILED, f"{job.filename}: {exc}. Nothing was imported.")
    except FileNotFoundError:
        _end(job, ImportJob.State.FAILED, f"{job.filename}: the stored upload is gone; nothing was imported: "
                                          "upload it again")
    except Exception:
        log.exception("import job %s (%s) failed", job.pk, job.filename)
        _end(job, ImportJob.State.FAILED, f"{job.filename}: the import failed on an internal error (logged for "
                                          "the administrator). Nothing was imported.")
    else:
        _end(job, ImportJob.State.DONE, result.message, rows=result.rows, result_id=result.import_id)
    finally:
        progress.close()
        Path(job.path).unlink(missing_ok=True)
    return {"job": job_id, "state": ImportJob.objects.get(pk=job_id).state}


def _end(job: ImportJob, state: str, message: str, *, rows: int | None = None, result_id: int | None = None) -> None:
    fields: dict[str, Any] = {"state": state, "message": message, "finished_at": timezone.now(), "result_id": result_id}
    if rows is not None:
        fields.update(rows_read=rows, bytes_read=job.size_bytes)
    ImportJob.objects.filter(pk=job.pk).update(**fields)
    if state == ImportJob.State.FAILED:
        Path(job.path).unlink(missing_ok=True)
