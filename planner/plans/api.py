"""The planner's objects: stage profiles, solved frontiers, their points, and each point's per-stage
frequency plan (what the planner pages show and offer as downloads), and asking for a frontier as the
profile page does (``POST /profiles/{id}/frontiers``). Thin handlers over planner.plans.profiles,
planner.plans.planning and planner.plans.results; lookups go through the caller's projects."""


from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

import pydantic
from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.errors import HttpError
from ninja.filter_schema import FilterLookup
from ninja.pagination import paginate
from ninja.params.functions import Path as PathParam
from ninja.params.functions import Query as QueryParam

from dashboard.projects.auth import ApiRequest
from dashboard.web.api_params import ERRORS, MAX_ID, Error, FrontierId, Pages, ProfileId, Rows, one_of
from planner import perseus
from planner.plans import measured, planning, results
from planner.plans.forms import PlanForm
from planner.plans.models import FrontierJob, StageProfile

router = Router(tags=["planner"])

BLOBS = ("frontier_data", "realised_data")
SOLVED_ERRORS: dict[int, type[Schema]] = {**ERRORS, 409: Error}
StragglerS = Annotated[
    float | None,
    QueryParam(None, gt=0, le=1e6, description="straggler iteration time T′ in seconds (omit: no straggler)"),
]


# --- schemas --------------------------------------------------------------------------------------------


class ProfileOut(Schema):
    id: int
    project_id: int
    name: str
    source: str = Field(description="upload, agent (recorded by an agent's profiler) or sample")
    digest: str = Field(description="SHA-256 of the profile's content")
    size_bytes: int
    num_stages: int
    num_rows: int
    frequencies_mhz: list[int] = Field(description="profiled SM frequencies, highest first")
    gpu_name: str
    p_blocking_w: float | None = Field(description="blocking power stated with the profile, W")
    run_id: int | None = Field(description="the run an agent recorded it in")
    created_at: datetime
    frontiers: int = Field(alias="frontier_count", description="frontiers requested on this profile")


class ProfileDetail(ProfileOut):
    csv_text: str = Field(description="the profile CSV as received (validated)")


class PointFigures(Schema):
    index: int = Field(description="frontier point, 0 = slowest")
    planned_time_s: float
    planned_energy_j: float
    realised_time_s: float = Field(description="re-evaluated at the profiled (discrete) figures")
    realised_energy_j: float


class Baseline(Schema):
    time_s: float = Field(description="iteration time with every computation at the highest frequency")
    energy_j: float


class ChoiceOut(Schema):
    """The plan chosen for a straggler time (or, with none, the plan with no slowdown) and its saving."""

    straggler_time_s: float
    point: int
    planned_time_s: float
    planned_energy_j: float
    realised_time_s: float
    realised_energy_j: float = Field(description="per iteration, blocking up to the straggler time")
    baseline_time_s: float
    baseline_energy_j: float
    saving_j: float = Field(description="energy saved per iteration against all-max")
    saving_fraction: float = Field(description="0.16 = 16 % less energy per iteration")
    meets_time: bool


class FrontierSummary(Schema):
    points: int
    baseline: Baseline
    slowest: PointFigures
    fastest: PointFigures
    least_energy: PointFigures
    intrinsic: ChoiceOut = Field(description="the saving with no straggler (no slowdown)")


class FrontierOut(Schema):
    id: int
    profile_id: int
    project_id: int
    status: str = Field(description="queued, running, done or failed")
    num_stages: int
    num_microbatches: int
    unit_time_s: float = Field(description="τ, the planner's time quantum")
    p_blocking_w: float
    schedule: str
    mode: str
    progress_done: int
    progress_total: int
    error: str
    num_points: int | None
    stop_reason: str
    solve_time_s: float | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    summary: FrontierSummary | None = Field(description="figures of the solved frontier; null until solved")


class FrontierPoint(PointFigures):
    saving_fraction: float = Field(description="realised energy per iteration saved against all-max")
    time_change: float = Field(description="realised time against all-max: +0.005 = 0.5 % slower")


class PlanStepOut(Schema):
    order: int = Field(description="position in the stage's program order")
    instruction: str = Field(description="forward or backward")
    microbatch: int
    freq_mhz: int


class RankOut(Schema):
    """One pipeline stage's schedule: replay ``steps`` every iteration (Zeus FrequencySchedule order)."""

    rank: int
    computations: int
    min_mhz: int
    mean_mhz: float
    max_mhz: int
    below_max: int = Field(description="computations planned below the highest profiled frequency")
    steps: list[PlanStepOut]


class PlanOut(Schema):
    frontier_id: int
    point: int
    points: int = Field(description="points on the frontier")
    planned_time_s: float
    planned_energy_j: float
    realised_time_s: float
    realised_energy_j: float = Field(description="per iteration; blocking until T′ when a straggler is given")
    baseline_time_s: float
    baseline_energy_j: float
    saving_j: float
    saving_fraction: float
    time_change: float
    straggler_time_s: float | None
    meets_straggler: bool
    ranks: list[RankOut]


class MeasuredRunOut(Schema):
    """One plan a run ran (an interval between plan switches) with its measured figures against the run's
    baseline run; ``null`` where not known (no baseline run, no energy measured). See docs/planner.md."""

    run_id: int
    run_name: str
    interval: int = Field(description="the run's n-th plan (0: the first; a straggler switches to the next)")
    reason: str = Field(description="why this plan came into force: start, straggler or recovered")
    point: int | None = Field(description="frontier point of the plan")
    straggler_time_s: float | None = Field(description="T′ the plan was chosen for; null: none")
    dry_run: bool = Field(description="the client changed no clock: the run measured all-max")
    baseline_run_id: int | None = Field(description="the run named by the plan's baseline_run, in the same project")
    baseline_run_name: str | None
    iterations: int = Field(description="steps counted: every rank reported them, warm-up left out")
    predicted_time_s: float | None = Field(description="planner's iteration time for this plan")
    predicted_energy_j: float | None = Field(description="planner's energy per iteration for this plan")
    predicted_saving_fraction: float | None = Field(description="1 − predicted energy / predicted all-max energy")
    realised_time_s: float | None = Field(description="mean over steps of the slowest rank's iteration time")
    realised_energy_j: float | None = Field(description="sum over ranks of each rank's mean energy per iteration")
    baseline_time_s_measured: float | None = Field(description="the baseline run's realised iteration time")
    baseline_energy_j_measured: float | None = Field(description="the baseline run's realised energy per iteration")
    realised_saving_fraction: float | None = Field(description="1 − realised energy / the baseline run's")
    time_change_fraction: float | None = Field(description="realised time / the baseline run's − 1: +0.004 = 0.4 % slower")


# --- helpers ----------------------------------------------------------------------------------------------


def _profiles(request: ApiRequest) -> QuerySet[StageProfile]:
    return StageProfile.objects.for_user(request.auth)


def _jobs(request: ApiRequest) -> QuerySet[FrontierJob]:
    return FrontierJob.objects.filter(profile__in=_profiles(request)).select_related("profile")


def _frontier_row(job: FrontierJob) -> dict[str, Any]:
    row = {name: getattr(job, name) for name in FrontierOut.model_fields if name not in ("project_id", "summary")}
    row["project_id"] = job.profile.project_id
    row["summary"] = _summary(job) if job.status == FrontierJob.Status.DONE else None
    return row


def _summary(job: FrontierJob) -> FrontierSummary | None:
    # Stored JSON written by planning.summarise; a row that does not fit the schema is shown without
    # figures rather than failing the whole list.
    try:
        return FrontierSummary.model_validate(job.summary or {})
    except pydantic.ValidationError:
        return None


def _solved(request: ApiRequest, frontier_id: int) -> planning.Solved:
    job = get_object_or_404(_jobs(request), pk=frontier_id)
    if job.status != FrontierJob.Status.DONE:
        raise HttpError(409, f"frontier {job.pk} is {job.status}, not solved yet: poll /planner/frontiers/{job.pk}")
    try:
        return planning.load(job)
    except perseus.PlannerError as exc:
        raise HttpError(409, f"frontier {job.pk} cannot be read back: {exc}") from None


# --- profiles ---------------------------------------------------------------------------------------------


class ProfileFilters(FilterSchema):
    project_id: int | None = Field(None, ge=1, le=MAX_ID, description="only profiles of this project")
    source: Annotated[StageProfile.Source, one_of(StageProfile.Source)] | None = None


@router.get("/profiles", response={200: list[ProfileOut], **ERRORS}, summary="List stage profiles")
@paginate(Pages)
def list_profiles(request: ApiRequest, filters: Query[ProfileFilters]) -> Any:
    """Stage profiles (per-stage time and energy at each frequency) in your projects, newest first."""
    return (
        filters.filter(_profiles(request)).defer("csv_text").annotate(frontier_count=Count("frontiers"))
        .order_by("-created_at", "-pk")
    )


@router.get("/profiles/{profile_id}", response={200: ProfileDetail, **ERRORS}, summary="One stage profile, with its CSV")
def get_profile(request: ApiRequest, profile_id: ProfileId) -> Any:
    return get_object_or_404(_profiles(request).annotate(frontier_count=Count("frontiers")), pk=profile_id)


class FrontierRequest(Schema):
    """What to plan on the profile, as the profile page's form asks it (the stage count is the profile's)."""

    num_microbatches: int = Field(description="M: microbatches each pipeline runs per iteration")
    unit_time_ms: float = Field(1.0, description="τ, the planner's time step, in ms")
    p_blocking_w: float | None = Field(
        None, description="power a GPU draws while blocking, W (omit: the one stated with the profile, else the "
                          "GPU's Perseus value)")
    schedule: str = Field(FrontierJob.Schedule.ONE_F_ONE_B, description="1f1b or gpipe")
    mode: str = Field(FrontierJob.Mode.DEFAULT, description="default or lowtime")


@router.post(
    "/profiles/{profile_id}/frontiers", response={200: FrontierOut, 202: FrontierOut, **ERRORS},
    summary="Ask for a profile's frontier",
)
def request_frontier(request: ApiRequest, profile_id: ProfileId, body: FrontierRequest) -> Any:
    """Queue the frontier of this profile for these parameters (solved by a worker, or in-process without
    a broker) and answer 202 with it; poll ``GET /frontiers/{id}`` until ``done``. The same request made
    before answers 200 with the frontier already asked for (never solved twice). The parameters are
    checked as the profile page's form checks them: a 400 names what is wrong, and nothing is queued."""
    profile = get_object_or_404(_profiles(request), pk=profile_id)
    data = body.model_dump()
    if data["p_blocking_w"] is None:
        data["p_blocking_w"] = PlanForm(profile=profile).initial["p_blocking_w"]
    form = PlanForm(data, profile=profile)
    if not form.is_valid():
        problems = "; ".join(f"{'parameters' if name == '__all__' else name}: {' '.join(str(e) for e in errors)}"
                             for name, errors in form.errors.items())
        raise HttpError(400, f"invalid input: {problems}")
    job, queued = planning.request_frontier(profile, form.parameters(), request.auth)
    row = _frontier_row(get_object_or_404(_jobs(request).defer(*BLOBS), pk=job.pk))
    return Status(202 if queued else 200, row)


# --- frontiers --------------------------------------------------------------------------------------------


class FrontierFilters(FilterSchema):
    profile_id: int | None = Field(None, ge=1, le=MAX_ID, description="only frontiers of this profile")
    project_id: Annotated[int | None, FilterLookup("profile__project_id")] = Field(
        None, ge=1, le=MAX_ID, description="only frontiers of this project's profiles"
    )
    status: Annotated[FrontierJob.Status, one_of(FrontierJob.Status)] | None = None


@router.get("/frontiers", response={200: list[FrontierOut], **ERRORS}, summary="List frontiers")
@paginate(Pages)
def list_frontiers(request: ApiRequest, filters: Query[FrontierFilters]) -> Any:
    """Planning requests on your profiles (pipeline shape, τ, P_blocking, schedule), newest first, with
    their status and, once solved, their headline figures."""
    jobs = filters.filter(_jobs(request)).defer(*BLOBS).order_by("-created_at", "-pk")
    return Rows(jobs, _frontier_row)


@router.get("/frontiers/{frontier_id}", response={200: FrontierOut, **ERRORS}, summary="One frontier")
def get_frontier(request: ApiRequest, frontier_id: FrontierId) -> Any:
    """Poll this while a frontier is queued or solving: ``progress_done / progress_total``."""
    return _frontier_row(get_object_or_404(_jobs(request).defer(*BLOBS), pk=frontier_id))


@router.get(
    "/frontiers/{frontier_id}/points", response={200: list[FrontierPoint], **SOLVED_ERRORS},
    summary="Every point of a solved frontier",
)
@paginate(Pages)
def list_points(request: ApiRequest, frontier_id: FrontierId) -> Any:
    """Planned and realised iteration time and energy of every point, slowest first (frontier.csv and
    realised.csv of the frontier page). A frontier not solved yet is a 409."""
    solved = _solved(request, frontier_id)
    base = solved.baseline
    planned_t, planned_e = solved.frontier.time_s.tolist(), solved.frontier.energy_j.tolist()
    real_t, real_e = solved.realised[0].tolist(), solved.realised[1].tolist()
    return [
        {"index": k, "planned_time_s": planned_t[k], "planned_energy_j": planned_e[k],
         "realised_time_s": real_t[k], "realised_energy_j": real_e[k],
         "saving_fraction": 1.0 - real_e[k] / base.energy_j, "time_change": real_t[k] / base.time_s - 1.0}
        for k in range(len(planned_t))
    ]


@router.get(
    "/frontiers/{frontier_id}/choice", response={200: ChoiceOut, **SOLVED_ERRORS},
    summary="The plan to use for a straggler time",
)
def get_choice(request: ApiRequest, frontier_id: FrontierId, straggler_time_s: StragglerS = None) -> Any:
    """With ``straggler_time_s`` (T′, the slowest pipeline's iteration time), the cheapest plan that
    finishes within it; without, the plan that saves energy at no slowdown."""
    solved = _solved(request, frontier_id)
    try:
        choice = results.choose(solved, straggler_time_s)
    except perseus.PlannerError as exc:
        raise HttpError(400, f"straggler_time_s: {exc}") from None
    return choice.summary()


@router.get(
    "/frontiers/{frontier_id}/plans/{point}", response={200: PlanOut, **SOLVED_ERRORS},
    summary="A point's per-stage frequency plan",
)
def get_plan(
    request: ApiRequest,
    frontier_id: FrontierId,
    point: Annotated[int, PathParam(ge=0, le=10**9, description="frontier point, 0 = slowest")],
    straggler_time_s: StragglerS = None,
) -> Any:
    """Every stage's frequencies in program order (plan.json / plan.csv of the plan page), with the
    plan's planned and realised figures against all-max. A point past the frontier's end is a 404."""
    solved = _solved(request, frontier_id)
    if point >= len(solved.frontier):
        raise HttpError(404, f"frontier {frontier_id} has {len(solved.frontier)} points (0 to {len(solved.frontier) - 1})")
    figures = results.plan_figures(solved, point, straggler_time_s)
    plan = figures.plan
    rows = results.rank_rows(plan, solved.profile.max_freq_mhz)
    return {
        "frontier_id": frontier_id,
        "point": plan.index,
        "points": len(solved.frontier),
        "planned_time_s": plan.time_s,
        "planned_energy_j": plan.energy_j,
        "realised_time_s": figures.realised.time_s,
        "realised_energy_j": figures.plan_energy_j,
        "baseline_time_s": figures.baseline.time_s,
        "baseline_energy_j": figures.baseline_energy_j,
        "saving_j": figures.saving_j,
        "saving_fraction": figures.saving_fraction,
        "time_change": figures.time_change,
        "straggler_time_s": straggler_time_s,
        "meets_straggler": figures.meets_straggler,
        "ranks": [
            {**asdict(row), "steps": [asdict(step) for step in plan.stages[row.rank]]} for row in rows
        ],
    }


@router.get(
    "/frontiers/{frontier_id}/runs", response={200: list[MeasuredRunOut], **ERRORS},
    summary="Runs that ran the frontier's plans, predicted against realised",
)
@paginate(Pages)
def list_frontier_runs(request: ApiRequest, frontier_id: FrontierId) -> Any:
    """Every plan of this frontier your runs ran (from the plan client's ``plan`` and ``iteration`` markers),
    newest run first: the planner's predicted iteration time, energy and saving against what the run
    measured, and its saving and time change against the baseline run it names. A run that switched plans
    (a straggler) has one item per plan."""
    job = get_object_or_404(_jobs(request).defer(*BLOBS), pk=frontier_id)
    return [row.as_item() for row in measured.measured_plans(request.auth, job.pk)]
