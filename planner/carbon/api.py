"""The carbon app's objects: a run's emissions (per node, hour and GPU) and offset quote, a project's
accounting settings, offsets ledger and region preferences, and the grid-intensity data sets.

Thin handlers over planner.carbon. Reads never write: a project with no offset policy, defaults or
region preference yet answers with the defaults the pages would start from, and a run's figures are the
stored ones, with their ``state`` (tasks recompute them; see planner.carbon.recompute).
"""


from datetime import UTC, date, datetime
from typing import Annotated, Any

from django.db.models import Count, F, Max, Min, Q, QuerySet, Sum
from django.shortcuts import get_object_or_404
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.pagination import paginate
from ninja.params.functions import Query as QueryParam

from dashboard.projects.auth import ApiRequest
from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from dashboard.web.api_params import ERRORS, SAFE_TEXT, Pages, ProjectId, RunId
from planner.carbon.advising import parse_allowed, preference_for
from planner.carbon.energy import run_energy_j
from planner.carbon.import_api import router as import_router
from planner.carbon.models import (
    IntensityRow,
    RunCarbon,
    RunCarbonHour,
    RunGpuCarbon,
    RunNodeCarbon,
    Site,
)
from planner.carbon.offsetting import RunOffset, policy_for, prices_table, project_ledger, quote_run
from planner.carbon.placing import project_settings
from planner.carbon.state import CarbonState, state_of

router = Router(tags=["carbon"])


# --- schemas --------------------------------------------------------------------------------------------


class OffsetQuoteOut(Schema):
    """What retiring credits for an emissions figure would take and cost (never netted from emissions)."""

    basis: str = Field(description="location or market: which emissions figure is offset")
    emissions_offset_g: float
    credit_type: str | None
    buffer_pct: float | None
    tonnes_to_retire: float | None
    credits: float | None
    price_per_tonne: float | None
    currency: str | None
    cost: float | None
    price_source: str | None
    price_as_of: date | None
    problem: str = Field(description="why there is no quote (e.g. no price for custom credits); empty if quoted")


class NodeCarbonOut(Schema):
    node: str
    where: str = Field(description="the zone, region or country its intensity came from")
    zone: str
    site: str
    located_by: str = Field(description="site, agent_zone, agent_region, project_default or world")
    located_note: str
    pue: float
    energy_j: float
    facility_energy_kwh: float
    emissions_g: float
    market_emissions_g: float


class HourCarbonOut(Schema):
    node: str
    hour_utc: datetime
    energy_j: float
    pue: float
    facility_energy_kwh: float
    intensity_g_per_kwh: float
    emissions_g: float
    market_emissions_g: float
    source: str
    basis: str = Field(description="lifecycle or direct")
    year: int
    step: str = Field(description="hourly, or the fallback used: imported_period, zone_yearly, country_yearly, world")
    reason: str


class GpuCarbonOut(Schema):
    gpu_id: int = Field(description="the run-GPU id, as in /runs/{run_id}/gpus")
    uuid: str
    node: str
    index: int
    energy_j: float
    emissions_g: float
    market_emissions_g: float


class RunCarbonOut(Schema):
    """A run's stored emissions with the provenance of every node-hour. ``computed`` is false while no
    figures are stored (the run has no energy yet, or they are being computed); then every figure is
    null and the lists are empty."""

    run_id: int
    computed: bool
    state: str = Field(description=(
        "current; behind (samples arrived since: recomputed within WATTWISE_CARBON_RECOMPUTE_S while the run "
        "streams); stale (an input changed: a recompute is queued); pending (being computed); no energy"))
    run_energy_j: float = Field(description="the run's GPU energy now (energy_j is what the figures cover)")
    computed_at: datetime | None
    energy_j: float | None
    facility_energy_kwh: float | None
    pue: float | None = Field(description="effective PUE: facility energy over GPU energy")
    emissions_g: float | None = Field(description="location-based, g CO2e")
    market_emissions_g: float | None = Field(description="market-based, g CO2e")
    mean_intensity_g_per_kwh: float | None
    node_hours: int | None
    fallback_node_hours: int | None = Field(description="node-hours without the zone's own hourly intensity")
    mixed_basis: bool | None
    notes: list[str]
    nodes: list[NodeCarbonOut]
    hours: list[HourCarbonOut]
    gpus: list[GpuCarbonOut]
    offset: OffsetQuoteOut | None


class SiteOut(Schema):
    id: int
    name: str
    where: str
    pue: float
    note: str


class ProjectCarbonOut(Schema):
    project_id: int
    runs_with_emissions: int
    stale_runs: int = Field(description="runs whose stored figures are due a recompute")
    energy_j: float
    emissions_g: float
    market_emissions_g: float
    default_where: str
    default_pue: float
    supplier_factor_g_per_kwh: float | None
    residual_mix_g_per_kwh: float | None
    sites: list[SiteOut]


class PriceOut(Schema):
    credit_type: str
    price_per_tonne: float | None
    currency: str | None
    source: str | None
    as_of: date | None
    own: bool = Field(description="the project's own price; false: the indicative default")


class PolicyOut(Schema):
    credit_type: str
    emissions_basis: str
    buffer_pct: float
    whole_credits: bool


class LedgerLineOut(Schema):
    run_id: int
    run: str
    quote: OffsetQuoteOut


class RetirementOut(Schema):
    run_id: int | None
    retired_on: date
    credit_type: str
    tonnes: float
    price_per_tonne: float
    currency: str
    registry: str
    reference: str


class OffsetsOut(Schema):
    project_id: int
    policy: PolicyOut
    prices: list[PriceOut]
    lines: list[LedgerLineOut] = Field(description="one per run with stored emissions: what offsetting it takes")
    retirements: list[RetirementOut] = Field(description="credits actually retired")
    tonnes_to_retire: float = Field(description="every run's tonnes with the policy's buffer, gross")
    retired_tonnes: float
    required_tonnes: float = Field(description="still to retire: tonnes_to_retire less retired_tonnes, ≥ 0")
    credits: float = Field(description="required_tonnes, rounded up once on this total if whole credits")
    currency: str | None = Field(description="of cost; null without a price (custom credits)")
    cost: float | None = Field(description="credits × the policy's price per tonne; null when unknown")


class AllowedRegion(Schema):
    where: str
    pue: float | None


class PreferencesOut(Schema):
    """Where a project is willing to train: advice only ranks regions passing these."""

    project_id: int
    allowed: list[AllowedRegion] = Field(description="empty: every catalogued region and the project's sites")
    max_intensity_g_per_kwh: float | None
    min_renewable_pct: float | None
    min_cfe_pct: float | None
    residency_group: str = Field(description="EU, EEA or an ISO2 country code; empty for none")
    updated_at: datetime | None


class DataSetOut(Schema):
    zone: str
    owner: str | None = Field(description="the project whose own data this is; null: shared by every project")
    source: str
    granularity: str = Field(description="hour, day, month or year")
    basis: str
    is_forecast: bool
    rows: int
    first_utc: datetime
    last_utc: datetime


class IntensityOut(Schema):
    zone: str
    start_utc: datetime
    granularity: str
    basis: str
    signal: str = Field(description="average or marginal")
    source: str
    is_forecast: bool
    intensity_g_per_kwh: float
    renewable_pct: float | None
    cfe_pct: float | None
    is_estimated: bool
    origin: str = Field(description="file (imported) or live (polled from a provider)")
    project_id: int | None = Field(description="the project whose own value this is; null: shared")


# --- helpers ----------------------------------------------------------------------------------------------


def _project(request: ApiRequest, project_id: int) -> Project:
    return get_object_or_404(Project.objects.for_user(request.auth), pk=project_id)


def _quote(offset: RunOffset) -> dict[str, Any]:
    q = offset.quote
    return {
        "basis": offset.basis,
        "emissions_offset_g": offset.emissions_g,
        "credit_type": q.credit_type.value if q else None,
        "buffer_pct": q.buffer_pct if q else None,
        "tonnes_to_retire": q.tonnes_to_retire if q else None,
        "credits": q.credits if q else None,
        "price_per_tonne": q.price_per_tonne if q else None,
        "currency": q.currency if q else None,
        "cost": q.cost if q else None,
        "price_source": q.price_source if q else None,
        "price_as_of": q.price_as_of if q else None,
        "problem": offset.problem,
    }


def _utc(value: datetime | None) -> datetime | None:
    """The parameter as an aware UTC datetime; a time without a zone is read as UTC, as data is stored."""
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:  # within hours of year 1 or 9999: as far as any bound can reach
        return (datetime.max if value.year > 1 else datetime.min).replace(tzinfo=UTC)


# --- a run's emissions ------------------------------------------------------------------------------------


@router.get("/runs/{run_id}/carbon", response={200: RunCarbonOut, **ERRORS}, summary="A run's emissions")
def get_run_carbon(request: ApiRequest, run_id: RunId) -> Any:
    """Location- and market-based emissions of the run, per node, per node-hour (with the intensity
    used and where it came from) and per GPU, and what offsetting it would cost under the project's
    policy. These are the stored figures: ``state`` says whether they are current or being recomputed."""
    run = get_object_or_404(Run.objects.for_user(request.auth).select_related("project"), pk=run_id)
    stored = RunCarbon.objects.filter(run=run).first()
    energy_j = run_energy_j(run)
    state: CarbonState = state_of(stored, energy_j)
    empty: dict[str, Any] = {"run_id": run.pk, "state": state.value, "run_energy_j": energy_j, "notes": [],
                             "nodes": [], "hours": [], "gpus": []}
    if stored is None:
        return {
            **empty, "computed": False, "offset": None,
            **dict.fromkeys(("computed_at", "energy_j", "facility_energy_kwh", "pue", "emissions_g",
                             "market_emissions_g", "mean_intensity_g_per_kwh", "node_hours",
                             "fallback_node_hours", "mixed_basis")),
        }
    nodes = list(RunNodeCarbon.objects.filter(run_carbon=stored).select_related("node"))
    hours = RunCarbonHour.objects.filter(node_carbon__run_carbon=stored).select_related("node_carbon__node")
    gpus = RunGpuCarbon.objects.filter(run_carbon=stored).select_related("run_gpu__gpu__node").order_by(
        "run_gpu__gpu__node__name", "run_gpu__gpu__index"
    )
    return {
        **empty,
        "computed": True,
        "computed_at": stored.computed_at,
        "energy_j": stored.energy_j,
        "facility_energy_kwh": stored.facility_energy_kwh,
        "pue": stored.pue,
        "emissions_g": stored.emissions_g,
        "market_emissions_g": stored.market_emissions_g,
        "mean_intensity_g_per_kwh": stored.emissions_g / stored.facility_energy_kwh
        if stored.facility_energy_kwh else None,
        "node_hours": stored.hours,
        "fallback_node_hours": stored.fallback_hours,
        "mixed_basis": stored.mixed_basis,
        "notes": [str(note) for note in stored.notes],
        "nodes": [
            {"node": n.node.name, "where": n.where, "zone": n.zone, "site": n.site_name, "located_by": n.located_by,
             "located_note": n.located_note, "pue": n.pue, "energy_j": n.energy_j,
             "facility_energy_kwh": n.facility_energy_kwh, "emissions_g": n.emissions_g,
             "market_emissions_g": n.market_emissions_g}
            for n in nodes
        ],
        "hours": [
            {"node": h.node_carbon.node.name, "hour_utc": h.hour_utc, "energy_j": h.energy_j, "pue": h.pue,
             "facility_energy_kwh": h.facility_energy_kwh, "intensity_g_per_kwh": h.intensity_g_per_kwh,
             "emissions_g": h.emissions_g, "market_emissions_g": h.market_emissions_g, "source": h.source,
             "basis": h.basis, "year": h.year, "step": h.step, "reason": h.reason}
            for h in sorted(hours, key=lambda h: (h.hour_utc, h.node_carbon.node.name))
        ],
        "gpus": [
            {"gpu_id": g.run_gpu_id, "uuid": g.run_gpu.gpu.uuid, "node": g.run_gpu.gpu.node.name,
             "index": g.run_gpu.gpu.index, "energy_j": g.energy_j, "emissions_g": g.emissions_g,
             "market_emissions_g": g.market_emissions_g}
            for g in gpus
        ],
        "offset": _quote(quote_run(stored, policy_for(run.project_id))),
    }


# --- a project's accounting ------------------------------------------------------------------------------


@router.get(
    "/projects/{project_id}/carbon", response={200: ProjectCarbonOut, **ERRORS}, summary="A project's emissions"
)
def get_project_carbon(request: ApiRequest, project_id: ProjectId) -> Any:
    """Totals of the stored run figures, the accounting defaults and the sites nodes run at."""
    project = _project(request, project_id)
    totals = RunCarbon.objects.filter(run__project=project).aggregate(
        runs=Count("id"), stale=Count("id", filter=Q(stale=True)), energy_j=Sum("energy_j"),
        emissions_g=Sum("emissions_g"), market_emissions_g=Sum("market_emissions_g"),
    )
    settings = project_settings(project.pk)
    return {
        "project_id": project.pk,
        "runs_with_emissions": totals["runs"],
        "stale_runs": totals["stale"],
        "energy_j": totals["energy_j"] or 0.0,
        "emissions_g": totals["emissions_g"] or 0.0,
        "market_emissions_g": totals["market_emissions_g"] or 0.0,
        "default_where": settings.default_where,
        "default_pue": settings.default_pue,
        "supplier_factor_g_per_kwh": settings.supplier_factor_g_per_kwh,
        "residual_mix_g_per_kwh": settings.residual_mix_g_per_kwh,
        "sites": list(Site.objects.filter(project=project).values("id", "name", "where", "pue", "note")),
    }


@router.get(
    "/projects/{project_id}/carbon/offsets", response={200: OffsetsOut, **ERRORS}, summary="A project's offsets ledger"
)
def get_offsets(request: ApiRequest, project_id: ProjectId) -> Any:
    """What offsetting each run's emissions would take and cost under the project's policy and prices,
    and the credits actually retired (the offsets page and its CSV)."""
    project = _project(request, project_id)
    policy = policy_for(project.pk)
    ledger = project_ledger(project)
    lines, retired, owed = ledger.lines, ledger.retirements, ledger.balance
    return {
        "project_id": project.pk,
        "policy": {"credit_type": policy.credit_type, "emissions_basis": policy.emissions_basis,
                   "buffer_pct": policy.buffer_pct, "whole_credits": policy.whole_credits},
        "prices": [
            {"credit_type": row["credit_type"], "own": row["own"],
             "price_per_tonne": row["price"].price_per_tonne if row["price"] else None,
             "currency": row["price"].currency if row["price"] else None,
             "source": row["price"].source if row["price"] else None,
             "as_of": row["price"].as_of if row["price"] else None}
            for row in prices_table(project.pk)
        ],
        "lines": [{"run_id": line.run.pk, "run": line.run.name, "quote": _quote(line)} for line in lines],
        "retirements": [
            {"run_id": r.run_id, "retired_on": r.retired_on, "credit_type": r.credit_type, "tonnes": r.tonnes,
             "price_per_tonne": r.price_per_tonne, "currency": r.currency, "registry": r.registry,
             "reference": r.reference}
            for r in retired
        ],
        "tonnes_to_retire": owed.tonnes_to_retire,
        "retired_tonnes": owed.retired_tonnes,
        "required_tonnes": owed.required_tonnes,
        "credits": owed.credits,
        "currency": owed.currency,
        "cost": owed.cost,
    }


@router.get(
    "/projects/{project_id}/carbon/preferences", response={200: PreferencesOut, **ERRORS},
    summary="A project's region preferences",
)
def get_preferences(request: ApiRequest, project_id: ProjectId) -> Any:
    """The regions a project is willing to train in and the limits (intensity, renewable and
    carbon-free share, data residency) that the placement advice applies."""
    project = _project(request, project_id)
    preference = preference_for(project.pk)
    entries, _ = parse_allowed(preference.allowed)
    return {
        "project_id": project.pk,
        "allowed": [{"where": where, "pue": pue} for where, pue in entries],
        "max_intensity_g_per_kwh": preference.max_intensity_g_per_kwh,
        "min_renewable_pct": preference.min_renewable_pct,
        "min_cfe_pct": preference.min_cfe_pct,
        "residency_group": preference.residency_group,
        "updated_at": preference.updated_at,
    }


# --- grid intensity (shared, or a project's own) ----------------------------------------------------------


@router.get("/carbon/datasets", response={200: list[DataSetOut], **ERRORS}, summary="Stored grid-intensity data sets")
@paginate(Pages)
def list_datasets(request: ApiRequest) -> Any:
    """Per zone, source, granularity and basis: how many intensity values are stored and the span
    they cover (the data page's coverage table): the shared data and that of the caller's projects."""
    return (
        IntensityRow.objects.visible_to(request.auth)
        .values("zone", "source", "granularity", "basis", "is_forecast", owner=F("project__name"))
        .annotate(rows=Count("id"), first_utc=Min("start_utc"), last_utc=Max("start_utc"))
        .order_by("zone", "source", "granularity", "basis", "is_forecast", "owner")
    )


ZoneParam = Annotated[
    str, QueryParam(..., min_length=1, max_length=64, pattern=SAFE_TEXT, description="grid zone, e.g. SE-SE3 or DE")
]
FromUtc = Annotated[datetime | None, QueryParam(None, description="periods starting at or after (ISO 8601; UTC if no zone)")]
ToUtc = Annotated[datetime | None, QueryParam(None, description="periods starting at or before (ISO 8601)")]


@router.get("/carbon/intensity", response={200: list[IntensityOut], **ERRORS}, summary="Stored intensity values of a zone")
@paginate(Pages)
def list_intensity(request: ApiRequest, zone: ZoneParam, from_utc: FromUtc = None, to_utc: ToUtc = None) -> Any:
    """Imported and polled grid-intensity values of one zone, oldest first: the shared ones and those of
    the caller's projects. An inverted range is a 400."""
    start, end = _utc(from_utc), _utc(to_utc)
    if start is not None and end is not None and start > end:
        raise HttpError(400, f"from_utc ({start.isoformat()}) is after to_utc ({end.isoformat()})")
    rows: QuerySet[IntensityRow] = IntensityRow.objects.visible_to(request.auth).filter(zone=zone)
    if start is not None:
        rows = rows.filter(start_utc__gte=start)
    if end is not None:
        rows = rows.filter(start_utc__lte=end)
    return rows.order_by("start_utc", "granularity", "source", "basis", "signal", "is_forecast", "project_id")


# Imports (listed, uploaded) and their jobs live in their own module; the carbon router serves them.
router.add_router("", import_router)
