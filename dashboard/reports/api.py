"""Model-card metadata and period reports through the API: thin handlers over dashboard.reports.model_card and
dashboard.reports.period. Runs and projects are looked up through the caller's projects (404 otherwise)."""

from __future__ import annotations

from typing import Annotated, Any

from django.shortcuts import get_object_or_404
from django.utils import timezone
from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.params.functions import Query as QueryParam

from dashboard.projects.auth import ApiRequest
from dashboard.projects.models import Project
from dashboard.reports.model_card import NotReady, co2_eq_emissions, model_card_yaml
from dashboard.reports.period import period_report
from dashboard.reports.periods import BadPeriod, period_from_query
from dashboard.reports.render import as_json
from dashboard.reports.selection import BadSelection, RunNotFound, pick_runs
from dashboard.telemetry.models import Run
from dashboard.web.api_params import ERRORS, SAFE_TEXT, Error, ProjectId

router = Router(tags=["reports"])
READY_ERRORS: dict[int, type[Schema]] = {**ERRORS, 409: Error}


class ModelCardOut(Schema):
    co2_eq_emissions: dict[str, Any] = Field(
        description="emissions (g CO2e, location-based), emissions_market_based (g), source, training_type, "
                    "geographical_location, hardware_used, energy_kwh")
    yaml: str = Field(description="the same block as YAML, for a model card's front matter")


@router.get("/model-card", response={200: ModelCardOut, **READY_ERRORS}, summary="Model-card emissions of runs")
def model_card(
    request: ApiRequest,
    runs: Annotated[str, QueryParam(..., max_length=4000, pattern=SAFE_TEXT,
                                    description="comma-separated run ids or names: the runs that trained one model")],
) -> Any:
    """The `co2_eq_emissions` block of a Hugging Face model card for runs that together trained one model.
    A 409 while any run's carbon figures are being computed."""
    try:
        picked = pick_runs(Run.objects.for_user(request.auth), runs.split(","))
    except BadSelection as error:
        raise HttpError(404 if isinstance(error, RunNotFound) else 400, str(error)) from None
    try:
        return {"co2_eq_emissions": co2_eq_emissions(picked), "yaml": model_card_yaml(picked)}
    except NotReady as error:
        raise HttpError(409, str(error)) from None


@router.get("/projects/{project_id}/report", response={200: dict[str, Any], **ERRORS}, summary="A period report",
            tags=["projects"])
def project_report(
    request: ApiRequest, project_id: ProjectId,
    period: Annotated[str, QueryParam("", max_length=40, pattern=SAFE_TEXT,
                                      description="2026-11, 2026-Q4, 2026, or custom (with from and to)")],
    first: Annotated[str, QueryParam("", alias="from", max_length=40, pattern=SAFE_TEXT,
                                     description="first day of a custom period, YYYY-MM-DD")],
    last: Annotated[str, QueryParam("", alias="to", max_length=40, pattern=SAFE_TEXT,
                                    description="last day, inclusive")],
) -> Any:
    """The project's energy and emissions for the runs started in a period (the current quarter by default),
    as the report page shows them, with every data source and its licence."""
    project = get_object_or_404(Project.objects.for_user(request.auth), pk=project_id)
    try:
        chosen = period_from_query({"period": period, "from": first, "to": last}, timezone.now().date())
    except BadPeriod as error:
        raise HttpError(400, str(error)) from None
    return as_json(period_report(project, chosen))
