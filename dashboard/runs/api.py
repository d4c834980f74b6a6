"""Projects, runs, a run's GPUs and a GPU's readings: thin handlers over dashboard.runs.summaries and
dashboard.runs.samples. Everything is looked up through the caller's projects, so another project's
object is a 404, exactly like one that does not exist."""


from typing import Annotated, Any, Literal

from django.db.models import Count, F
from django.shortcuts import get_object_or_404
from ninja import Field, FilterSchema, Query, Router
from ninja.filter_schema import FilterLookup
from ninja.pagination import paginate
from ninja.params.functions import Query as QueryParam

from dashboard.projects.auth import ApiRequest
from dashboard.projects.models import Project
from dashboard.runs import samples
from dashboard.runs.listing import SORT_KEYS
from dashboard.runs.schemas import (
    BucketsOut,
    ComponentEnergy,
    NodeTotals,
    ProjectOut,
    RunCarbonFigures,
    RunDetail,
    RunGpuOut,
    RunOut,
    SamplePageOut,
)
from dashboard.runs.summaries import run_figures, with_totals
from dashboard.telemetry.completeness import run_completeness
from dashboard.telemetry.models import Run, RunGpu
from dashboard.web.api_params import (
    ERRORS,
    MAX_ID,
    SAFE_TEXT,
    Error,
    FromMs,
    Pages,
    ProjectId,
    Rows,
    RunGpuId,
    RunId,
    ToMs,
    one_of,
)
from planner.carbon.figures import run_carbon
from planner.units import MS_PER_S

router = Router(tags=["runs"])

SortKey = Literal[
    "name", "-name", "started", "-started", "energy", "-energy", "duration", "-duration",
    "gpus", "-gpus", "power", "-power",
]


def run_for(request: ApiRequest, run_id: int) -> Run:
    """The run if it is in one of the caller's projects, else 404."""
    return get_object_or_404(Run.objects.for_user(request.auth).select_related("project"), pk=run_id)


def run_gpu_for(request: ApiRequest, run_id: int, gpu_id: int) -> RunGpu:
    run = run_for(request, run_id)
    return get_object_or_404(RunGpu.objects.select_related("gpu__node"), pk=gpu_id, run=run)


# --- projects ------------------------------------------------------------------------------------------


@router.get("/projects", response={200: list[ProjectOut], **ERRORS}, summary="Your projects", tags=["projects"])
def list_projects(request: ApiRequest) -> Any:
    """The projects you are a member of: the only ones whose data the API shows you."""
    return Project.objects.for_user(request.auth).annotate(run_count=Count("runs")).order_by("name")


@router.get("/projects/{project_id}", response={200: ProjectOut, **ERRORS}, summary="One project", tags=["projects"])
def get_project(request: ApiRequest, project_id: ProjectId) -> Any:
    return get_object_or_404(Project.objects.for_user(request.auth).annotate(run_count=Count("runs")), pk=project_id)


# --- runs ----------------------------------------------------------------------------------------------


class RunFilters(FilterSchema):
    project_id: int | None = Field(None, ge=1, le=MAX_ID, description="only runs of this project")
    status: Annotated[Run.Status, one_of(Run.Status)] | None = Field(None, description="only runs of this status (running, finished, interrupted)")
    tag: Annotated[str | None, FilterLookup("tags__name")] = Field(
        None, max_length=64, pattern=SAFE_TEXT, description="only runs carrying this tag"
    )


def _run_row(run: Run) -> dict[str, Any]:
    return {
        "id": run.pk,
        "name": run.name,
        "project_id": run.project_id,
        "project": run.project.name,
        "status": run.status,
        "simulated": run.simulated,
        "tags": [t.name for t in run.tags.all()],
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "gpus": getattr(run, "gpu_count", 0) or 0,
        "samples": getattr(run, "samples", 0) or 0,
        "energy_j": getattr(run, "energy_j", 0.0) or 0.0,
        "duration_s": getattr(run, "duration_s", 0.0) or 0.0,
        "mean_power_w": getattr(run, "mean_power_w", 0.0) or 0.0,
    }


@router.get("/runs", response={200: list[RunOut], **ERRORS}, summary="List runs")
@paginate(Pages)
def list_runs(
    request: ApiRequest,
    filters: Query[RunFilters],
    sort: Annotated[
        SortKey, QueryParam("-started", description="sort key; a leading '-' sorts descending (nulls last)")
    ] = "-started",
) -> Any:
    """Runs of your projects with their totals, as the runs page lists them. Paginated."""
    runs = filters.filter(Run.objects.for_user(request.auth))
    key = sort.removeprefix("-")
    field = F(SORT_KEYS[key])
    order = field.desc(nulls_last=True) if sort.startswith("-") else field.asc(nulls_last=True)
    ordered = with_totals(runs).select_related("project").prefetch_related("tags").order_by(order, "-pk")
    return Rows(ordered, _run_row)


@router.get("/runs/{run_id}", response={200: RunDetail, **ERRORS}, summary="One run, with its totals")
def get_run(request: ApiRequest, run_id: RunId) -> Any:
    """What the run page's cards show: energy, duration, power, GPU-hours, per-node totals, and the
    stored emissions when they have been computed (full carbon detail: /runs/{run_id}/carbon)."""
    run = run_for(request, run_id)
    figures = run_figures(run)
    row = _run_row(
        with_totals(Run.objects.filter(pk=run.pk)).select_related("project").prefetch_related("tags").get()
    )
    carbon = run_carbon(run, offset=False)
    return {
        **row,
        "energy_kwh": figures.energy_kwh,
        "gpu_hours": figures.gpu_hours,
        "peak_gpu_power_w": figures.peak_gpu_power_w,
        "estimated": figures.estimated,
        "first_sample_at": figures.first_at,
        "last_sample_at": figures.last_at,
        "nodes": [NodeTotals(node=name, **totals) for name, totals in figures.by_node().items()],
        "components": [ComponentEnergy(component=c.component, energy_j=c.energy_j, devices=c.devices)
                       for c in figures.components()],
        "carbon": None if carbon.totals is None else RunCarbonFigures(
            emissions_g=carbon.totals.emissions_g, market_emissions_g=carbon.totals.market_emissions_g,
            facility_energy_kwh=carbon.totals.facility_energy_kwh, pue=carbon.totals.pue,
            computed_at=carbon.totals.computed_at, stale=not carbon.current,
        ),
        "completeness": run_completeness(run).as_json(),
    }


# --- GPUs and readings ---------------------------------------------------------------------------------


def _gpu_row(run_gpu: RunGpu) -> dict[str, Any]:
    gpu = run_gpu.gpu
    return {
        "id": run_gpu.pk, "component": gpu.component, "uuid": gpu.uuid, "node": gpu.node.name, "index": gpu.index, "name": gpu.name,
        "energy_source": gpu.energy_source, "power_field": gpu.power_field, "simulated": gpu.simulated,
        "estimated": run_gpu.estimated, "samples": run_gpu.samples, "energy_j": run_gpu.energy_j,
        "mean_power_w": run_gpu.mean_power_w, "peak_power_w": run_gpu.peak_power_w,
        "first_ms": run_gpu.first_ms, "last_ms": run_gpu.last_ms,
        "streams": run_gpu.streams, "overlap_s": run_gpu.overlap_ms / MS_PER_S,
    }


@router.get("/runs/{run_id}/gpus", response={200: list[RunGpuOut], **ERRORS}, summary="A run's GPUs")
def list_gpus(request: ApiRequest, run_id: RunId) -> Any:
    """Every device that sent readings for the run, by node and index, with its totals: its GPUs and, where
    the agent read RAPL, its CPU packages and DRAM (``component`` says which)."""
    run = run_for(request, run_id)
    return [_gpu_row(rg) for rg in RunGpu.objects.filter(run=run).select_related("gpu__node")]


@router.get("/runs/{run_id}/gpus/{gpu_id}", response={200: RunGpuOut, **ERRORS}, summary="One GPU of a run")
def get_gpu(request: ApiRequest, run_id: RunId, gpu_id: RunGpuId) -> Any:
    return _gpu_row(run_gpu_for(request, run_id, gpu_id))


@router.get(
    "/runs/{run_id}/gpus/{gpu_id}/samples",
    response={200: SamplePageOut, **ERRORS, 410: Error},
    summary="A GPU's raw readings (paginated by cursor)",
)
def get_samples(
    request: ApiRequest,
    run_id: RunId,
    gpu_id: RunGpuId,
    from_ms: FromMs = None,
    to_ms: ToMs = None,
    limit: Annotated[
        int,
        QueryParam(samples.DEFAULT_PAGE_SAMPLES, ge=1, le=samples.MAX_PAGE_SAMPLES,
                   description=f"samples per page, 1 to {samples.MAX_PAGE_SAMPLES:,}"),
    ] = samples.DEFAULT_PAGE_SAMPLES,
    cursor: Annotated[
        str | None,
        QueryParam(None, max_length=64, pattern=SAFE_TEXT, description="next_cursor of the previous page"),
    ] = None,
) -> Any:
    """Readings in ``[from_ms, to_ms]`` in time order, columnar and exactly as stored (integers in the
    agent's units). Follow ``next_cursor`` until it is null to read every sample once. An inverted
    range is a 400; a range reaching into raw samples the raw retention dropped is a 410 saying which."""
    run_gpu = run_gpu_for(request, run_id, gpu_id)
    after = samples.Cursor.decode(cursor) if cursor else None
    page = samples.read_page(run_gpu, from_ms, to_ms, limit=limit, after=after)
    return {
        "from_ms": page.span.from_ms if page.span else None,
        "to_ms": page.span.to_ms if page.span else None,
        "count": page.count,
        "next_cursor": page.next_cursor.encode() if page.next_cursor else None,
        **{name: page.columns[name].tolist() for name in samples.SAMPLE_FIELDS},
    }


@router.get(
    "/runs/{run_id}/gpus/{gpu_id}/samples/buckets",
    response={200: BucketsOut, **ERRORS},
    summary="A GPU's readings downsampled to at most N buckets",
)
def get_buckets(
    request: ApiRequest,
    run_id: RunId,
    gpu_id: RunGpuId,
    from_ms: FromMs = None,
    to_ms: ToMs = None,
    points: Annotated[
        int,
        QueryParam(2000, ge=1, le=samples.MAX_POINTS, description=f"most buckets to return, 1 to {samples.MAX_POINTS:,}"),
    ] = 2000,
) -> Any:
    """Min, mean and max of power, SM clock, utilisation and temperature in at most ``points``
    fixed-width buckets over ``[from_ms, to_ms]``: what the charts draw. Totals never come from here
    (use the run and GPU energy figures)."""
    run_gpu = run_gpu_for(request, run_id, gpu_id)
    series = samples.read_buckets(run_gpu, from_ms, to_ms, points=points)
    out: dict[str, Any] = {
        "from_ms": series.span.from_ms if series.span else None,
        "to_ms": series.span.to_ms if series.span else None,
        "bucket_ms": series.bucket_ms,
        "source": series.source,
        "t_ms": series.t_ms.tolist(),
    }
    for metric, buckets in series.metrics.items():
        out[metric] = {"mean": buckets.mean.tolist(), "min": buckets.low.tolist(), "max": buckets.high.tolist()}
    return out
