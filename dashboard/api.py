"""The REST API: one NinjaAPI with the runs, planner and carbon routers, and its error answers.

Every error is JSON ``{"detail": "..."}`` with the status that names the problem: 400 for input that
does not parse or cannot be answered (including ninja's validation errors, which would otherwise be
422s), 401 for a missing, malformed or unknown token, 404 for anything outside the caller's projects,
409 for a frontier not solved yet. The schema (/api/openapi.json) and the docs page (/api/docs) are
public: they describe the API and hold no data.
"""

from __future__ import annotations

from django.http import Http404, HttpRequest, HttpResponse
from ninja import NinjaAPI, Swagger
from ninja.errors import AuthenticationError, ValidationError
from ninja.operation import Operation

from dashboard.projects.auth import API_AUTH, unauthorized_detail
from dashboard.reports import api as reports
from dashboard.runs import api as runs
from dashboard.runs.samples import BadRequest, RawExpired
from dashboard.telemetry import http_ingest
from planner.carbon import api as carbon
from planner.plans import api as planner

DESCRIPTION = """
Energy and carbon of your training runs, read-only but for intensity file uploads: projects, runs,
per-GPU readings (raw, paginated by cursor, or downsampled), the planner's profiles, frontiers and
frequency plans, and emissions, offsets and grid-intensity data. You see exactly what the pages show you: your projects' data.

**Authenticate** with `Authorization: Bearer TOKEN` (`python manage.py create_api_token USER`
prints a token), or sign in to the site and use this page.

**Units** are in the field names: `energy_j`, `power_mw`, `t_ms` (epoch milliseconds),
`intensity_g_per_kwh`. Lists take `limit` and `offset` and answer `{"items": [...], "count": N}`.

**Errors** are `{"detail": "..."}`: 400 bad input (unparseable or out-of-range parameters, an
inverted time range), 401 not authenticated, 404 not found or not in your projects, 409 a frontier
not solved yet.
"""

class WattwiseApi(NinjaAPI):
    def get_openapi_operation_id(self, operation: Operation) -> str:
        # The handler's own name (list_runs, get_plan): short, unique here, and stable for clients.
        return operation.view_func.__name__


api = WattwiseApi(
    title="Wattwise API",
    version="1",
    description=DESCRIPTION,
    openapi_url="/openapi.json",
    docs_url="/docs",
    # Served from ninja's bundled static files; no validator badge, which would call swagger.io.
    docs=Swagger(settings={"validatorUrl": None, "persistAuthorization": True}),
    auth=API_AUTH,
    urls_namespace="api",
)
api.add_router("", runs.router)
api.add_router("", carbon.router)
api.add_router("", reports.router)
api.add_router("/planner", planner.router)
# Agents' signed messages: authenticated by each envelope's HMAC, not by API_AUTH (and so no CSRF).
api.add_router("", http_ingest.router)


@api.exception_handler(AuthenticationError)
def unauthorized(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    response = api.create_response(request, {"detail": unauthorized_detail(request)}, status=401)
    response["WWW-Authenticate"] = 'Bearer realm="wattwise"'
    return response


@api.exception_handler(ValidationError)
def invalid_input(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    problems = []
    for error in exc.errors:
        loc = [part if isinstance(part, int) else str(part) for part in error.get("loc", ())]
        problems.append({"loc": loc, "msg": str(error.get("msg", "invalid"))})
    # Only where and what: echoing the input back could reflect anything the caller sent.
    summary = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:]) or 'input'}: {e['msg']}" for e in problems)
    return api.create_response(request, {"detail": f"invalid input: {summary}", "errors": problems}, status=400)


@api.exception_handler(BadRequest)
def bad_request(request: HttpRequest, exc: BadRequest) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=400)


@api.exception_handler(RawExpired)
def raw_expired(request: HttpRequest, exc: RawExpired) -> HttpResponse:
    return api.create_response(request, {"detail": str(exc)}, status=410)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    # The same answer for "does not exist" and "not in your projects": existence is not leaked.
    detail = str(exc) if exc.args else "not found"
    return api.create_response(request, {"detail": detail}, status=404)
