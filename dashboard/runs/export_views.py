"""Downloads: thin views over ``dashboard.runs.exports``, and the Prometheus endpoint over ``dashboard.runs.metrics``.

Who is asking: a request with ``Authorization: Bearer TOKEN`` is judged by the token alone (a wrong one
is a 401, even from a logged-in browser, so a misconfigured script fails loudly instead of borrowing a
session); otherwise the session's user. Without either, downloads send the visitor to the login page
like every page, and ``/metrics``, which only machines read, answers 401.

Every export checks the run is visible to the user first (another project's run is a 404, whatever the
parameters), then the parameters (a bad one is a 400 with a plain-text message saying what to send).
Large exports are ``StreamingHttpResponse``s fed by generators, so nothing holds the whole file.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from functools import wraps
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_safe

from dashboard.projects.tokens import user_for_bearer
from dashboard.runs import exports, metrics
from dashboard.runs.listing import list_runs
from dashboard.runs.samples import RawExpired
from dashboard.telemetry.models import Run

CSV_TYPE = "text/csv; charset=utf-8"


def _sends_bearer(request: HttpRequest) -> bool:
    return request.headers.get("Authorization", "").strip().lower().startswith("bearer")


def _unauthorized() -> HttpResponse:
    response = HttpResponse(
        "401 Unauthorized: send a valid API token as 'Authorization: Bearer TOKEN' "
        "(manage.py create_api_token USER), or log in.\n",
        status=401, content_type="text/plain; charset=utf-8",
    )
    response["WWW-Authenticate"] = 'Bearer realm="wattwise"'
    return response


def login_or_token_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """``login_required``, or a valid Bearer token standing in for the session (401 if it is not valid)."""
    session_view = login_required(view)

    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> Any:
        if not _sends_bearer(request):
            return session_view(request, *args, **kwargs)
        user = user_for_bearer(request.headers.get("Authorization"))
        if user is None:
            return _unauthorized()
        request.user = user
        return view(request, *args, **kwargs)

    return wrapped


def _filename(run: Run, what: str) -> str:
    # slugify keeps the name ASCII and free of quotes, so the header needs no encoding.
    stem = "-".join(part for part in (slugify(run.project.name), slugify(run.name)) if part) or f"run-{run.pk}"
    return f"{stem}-{what}.csv"


def _attachment(response: HttpResponse | StreamingHttpResponse, filename: str) -> Any:
    response["Content-Disposition"] = content_disposition_header(True, filename)
    # Exports reflect live data and carry a project's figures: never cache them on the way.
    response["Cache-Control"] = "private, no-store"
    return response


def _streamed_csv(header: Sequence[str], rows: Iterable[Sequence[Any]], filename: str) -> StreamingHttpResponse:
    return _attachment(StreamingHttpResponse(exports.csv_chunks(header, rows), content_type=CSV_TYPE), filename)


def _bad_request(error: exports.BadParameter) -> HttpResponseBadRequest:
    return HttpResponseBadRequest(f"{error}\n", content_type="text/plain; charset=utf-8")


@require_safe
@login_or_token_required
def run_samples_csv(request: HttpRequest, pk: int) -> HttpResponse | StreamingHttpResponse:
    """``?from=&to=`` (epoch ms or ISO 8601 UTC, half-open) and ``resolution=raw|minute``."""
    run = get_object_or_404(Run.objects.for_user(request.user).select_related("project"), pk=pk)
    try:
        span = exports.parse_range(request.GET)
        resolution = exports.parse_resolution(request.GET)
    except exports.BadParameter as error:
        return _bad_request(error)
    if resolution == "minute":
        return _streamed_csv(exports.MINUTE_HEADER, exports.minute_rows(run, span), _filename(run, "minutes"))
    try:
        exports.check_raw(run, span)
    except RawExpired as expired:
        # 410 Gone: the samples existed and were dropped by the raw retention; the message says what is kept.
        return HttpResponse(f"{expired}\n", status=410, content_type="text/plain; charset=utf-8")
    return _streamed_csv(exports.SAMPLE_HEADER, exports.sample_rows(run, span), _filename(run, "samples"))


@require_safe
@login_or_token_required
def run_summary_csv(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(Run.objects.for_user(request.user).select_related("project"), pk=pk)
    # A few rows, built before answering so a failure is an error page, not a truncated file.
    text = "".join(exports.csv_chunks(exports.SUMMARY_HEADER, exports.summary_rows(run)))
    return _attachment(HttpResponse(text, content_type=CSV_TYPE), _filename(run, "summary"))


@require_safe
@login_or_token_required
def runs_csv(request: HttpRequest) -> StreamingHttpResponse:
    """Every run the runs page would list with the same ``project``, ``tag``, ``status`` and ``sort``."""
    listing = list_runs(request.user, request.GET)
    return _streamed_csv(exports.RUNS_HEADER, exports.run_list_rows(listing.runs), "wattwise-runs.csv")


@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition for a Bearer API token or a logged-in session; 401 otherwise."""
    if _sends_bearer(request):
        user = user_for_bearer(request.headers.get("Authorization"))
    else:
        user = request.user if request.user.is_authenticated else None
    if user is None:
        return _unauthorized()
    body, content_type = metrics.exposition(user, request.headers.get("Accept", ""))
    response = HttpResponse(body, content_type=content_type)
    response["Cache-Control"] = "no-store"
    return response
