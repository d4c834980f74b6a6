"""Intensity imports through the API (mounted by the carbon router): the list, and uploads for scripts.

``GET /carbon/imports`` lists the imports the caller may see; ``POST /carbon/imports`` stores the file and queues its import as the page does (202 with the job);
``GET /carbon/imports/jobs/{job_id}`` follows it. The same form validates both, and the same rule decides
whose data it may be: the caller's own project's (``project_id``), or shared (staff only).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from django.shortcuts import get_object_or_404
from ninja import Field, File, Form, Router, Schema, Status, UploadedFile
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.params.functions import Path

from dashboard.projects.auth import ApiRequest
from dashboard.projects.models import Project
from dashboard.web.api_params import ERRORS, MAX_ID, Error, Pages
from planner.carbon import import_jobs
from planner.carbon.access import may_import_for
from planner.carbon.forms import ImportForm
from planner.carbon.models import ImportJob, IntensityImport

router = Router(tags=["carbon"])

JobId = Annotated[int, Path(ge=1, le=MAX_ID, description="id of the import job")]


class ImportOut(Schema):
    id: int
    filename: str
    format: str
    sha256: str
    zones: str
    first_utc: datetime | None
    last_utc: datetime | None
    rows_created: int
    rows_updated: int
    rows_unchanged: int
    imported_at: datetime
    via: str
    project_id: int | None = Field(description="the project whose own data it imported; null: shared (by staff)")


class ImportJobOut(Schema):
    """An uploaded file being imported in the background: poll it until ``finished``."""

    id: int
    project_id: int | None = Field(description="whose data: the project's own; null: shared by every project")
    filename: str
    state: str = Field(description="queued, running, done or failed")
    finished: bool
    size_bytes: int
    bytes_read: int
    rows_read: int
    fraction: float = Field(description="share of the file read, 0 to 1")
    message: str = Field(description="what the import changed, or why nothing was imported")
    import_id: int | None = Field(description="the import it recorded (see /carbon/imports); null if none")
    created_at: datetime
    finished_at: datetime | None


def _out(job: ImportJob) -> dict[str, Any]:
    return {
        "id": job.pk, "project_id": job.project_id, "filename": job.filename, "state": job.state,
        "finished": job.finished, "size_bytes": job.size_bytes, "bytes_read": job.bytes_read,
        "rows_read": job.rows_read, "fraction": job.progress_fraction, "message": job.message,
        "import_id": job.result_id, "created_at": job.created_at, "finished_at": job.finished_at,
    }


@router.get("/carbon/imports", response={200: list[ImportOut], **ERRORS}, summary="Intensity imports")
@paginate(Pages)
def list_imports(request: ApiRequest) -> Any:
    """Imported files that changed something, newest first: the shared imports and those of the caller's
    projects (never another project's files)."""
    return IntensityImport.objects.visible_to(request.auth).order_by("-imported_at", "-pk")


@router.post("/carbon/imports", response={202: ImportJobOut, 403: Error, **ERRORS}, summary="Upload an intensity file")
def upload_import(
    request: ApiRequest,
    file: Annotated[UploadedFile, File(description="Electricity Maps CSV or JSON, UK Carbon Intensity JSON, "
                                                   "WattTime JSON or CodeCarbon emissions.csv, up to 64 MiB")],
    project_id: Annotated[int | None, Form(description="the project whose own data this is; omit for shared "
                                                       "data (staff only)")] = None,
    zone: Annotated[str, Form(description="file the data under this zone or cloud region's zone")] = "",
    basis: Annotated[str, Form(description="lifecycle or direct (Electricity Maps)")] = "lifecycle",
    timezone: Annotated[str, Form(description="CodeCarbon files: the machine's time zone")] = "UTC",
) -> Any:
    """Store the file and queue its import, as the data page does; answers 202 with the job to poll."""
    visible = Project.objects.for_user(request.auth)
    if project_id is not None:
        get_object_or_404(visible, pk=project_id)
    elif not may_import_for(request.auth, None):
        raise HttpError(403, "only staff may import data shared by every project: give project_id")
    form = ImportForm(
        {"project": project_id or "", "zone": zone, "basis": basis, "timezone": timezone}, {"file": file},
        projects=visible, may_share=may_import_for(request.auth, None),
    )
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(str(e) for e in errors)}" for name, errors in form.errors.items())
        raise HttpError(400, f"invalid input: {problems}")
    data = form.cleaned_data
    job = import_jobs.submit(data["file"], project=data["project"], user=request.auth, zone=data["zone"],
                             basis=data["basis"], timezone_name=data["timezone"])
    return Status(202, _out(job))


@router.get("/carbon/imports/jobs/{job_id}", response={200: ImportJobOut, **ERRORS}, summary="An upload's import")
def get_import_job(request: ApiRequest, job_id: JobId) -> Any:
    """How far the import of one of the caller's own uploads has got."""
    job = get_object_or_404(ImportJob.objects.filter(requested_by=request.auth.pk), pk=job_id)
    return _out(job)
