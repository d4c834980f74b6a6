"""Model-card metadata and period reports through the API: thin handlers over dashboard.reports.model_card and
dashboard.reports.period. Runs and projects are looked up through the caller's projects (404 otherwise)."""

from __future__ import annotations

from typing import Annotated, Any

from ninja import Field, Router, Schema
from ninja.errors import HttpError
from ninja.params.functions import Query as QueryParam

from dashboard.projects.auth import ApiRequest
from dashboard.reports.model_card import NotReady, co2_eq_emissions, model_card_yaml
from dashboard.reports.selection import BadSelection, RunNotFound, pick_runs
from dashboard.telemetry.models import Run
from dashboard.web.api_params import ERRORS, SAFE_TEXT, Error

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
