"""Pages: thin views over dashboard.runs.listing, dashboard.runs.run_page, dashboard.runs.summaries and
dashboard.runs.nodes_page."""

from __future__ import annotations

import json
import time
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from django.views.decorators.http import require_POST

from dashboard.projects.membership import site_admins
from dashboard.runs import page_cache
from dashboard.runs.listing import SORT_KEYS, list_runs
from dashboard.runs.nodes_page import dead_letters_waiting, nodes_page, refused_nodes
from dashboard.runs.power_limits import run_power_limits
from dashboard.runs.ranges import ALL, LABELS, RELATIVE_MS, BadRange, RangeChoice, parse_choice
from dashboard.runs.run_page import Drawn, gpu_label, gpu_page, run_page
from dashboard.runs.summaries import run_figures
from dashboard.telemetry import retention, versions
from dashboard.telemetry.completeness import run_completeness
from dashboard.telemetry.models import Run, RunGpu
from dashboard.telemetry.work import (
    MAX_AMOUNT,
    UNITS,
    BadWork,
    PerUnit,
    enter_work,
    parse_amounts,
    per_unit,
    runs_work,
)
from planner.carbon.figures import run_carbon, run_section, runs_carbon
from planner.units import MS_PER_S


def _now_ms() -> int:
    return int(time.time() * MS_PER_S)


def _bad_range(request: HttpRequest, error: BadRange, back: str) -> HttpResponse:
    return render(request, "runs/bad_request.html", {"message": str(error), "back": back}, status=400)


def _picker(request: HttpRequest, drawn: Drawn) -> dict[str, Any]:
    return {"choice": drawn.choice, "choices": [(key, LABELS[key]) for key in [*RELATIVE_MS, ALL]],
            "span": drawn.span, "path": request.path}


def _live_json(status: str, drawn: Drawn, cards_html: str, span_html: str = "") -> HttpResponse:
    # Figures are already JSON text: splice them in rather than parse and re-encode them.
    head = json.dumps({"status": status, "cards_html": cards_html, "span_html": span_html, "empty": drawn.empty})
    plots = ", ".join(f"{json.dumps(div)}: {figure}" for div, figure in drawn.plots)
    response = HttpResponse(head[:-1] + ', "plots": {' + plots + "}}", content_type="application/json")
    response["Cache-Control"] = "no-store"
    return response


@login_required
def runs_list(request: HttpRequest) -> HttpResponse:
    listing = list_runs(request.user, request.GET)
    page = Paginator(listing.runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "runs/runs.html",
        {"listing": listing, "page": page, "rows": _with_work(list(page.object_list)), "sort_keys": SORT_KEYS,
         "refused_nodes": refused_nodes(request.user), "dead_letters": dead_letters_waiting(request.user),
         # No project: the page says who can add them instead of "No runs yet".
         "site_admins": site_admins() if not listing.projects else []},
    )


def _with_work(runs: list[Any]) -> list[tuple[Any, PerUnit | None]]:
    """Each listed run with its energy and emissions per unit of work, in its finest unit (tokens, samples,
    steps), or None without any."""
    works = runs_work(r.pk for r in runs)
    carbon = runs_carbon(runs, {r.pk: r.energy_j or 0.0 for r in runs})
    rows: list[tuple[Any, PerUnit | None]] = []
    for run in runs:
        figures = carbon[run.pk]
        emissions_g = figures.totals.emissions_g if figures.current and figures.totals else None
        units = per_unit(works[run.pk], run.energy_j or 0.0, emissions_g)
        rows.append((run, units[0] if units else None))
    return rows


def _visible_run(request: HttpRequest, pk: int) -> Run:
    return get_object_or_404(Run.objects.for_user(request.user).select_related("project").prefetch_related("tags"), pk=pk)


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = page_cache.visible_run(request.user, pk)  # access first: no cache is read for a run one cannot see
    try:
        choice = parse_choice(request.GET)
    except BadRange as error:
        return _bad_range(request, error, run.get_absolute_url())
    body = page_cache.cached_text("page", run, choice, request.path, lambda: _run_body(request, run, choice))
    # The body was rendered from the templates (escaped there); only the CSRF placeholder is replaced.
    return render(request, "runs/run.html", {"run": run, "body": mark_safe(page_cache.with_csrf(body, request))})


def _run_body(request: HttpRequest, run: Run, choice: RangeChoice) -> tuple[str, bool]:
    """The run page's body, holding nothing of the viewer (the CSRF token is a placeholder): what is cached,
    unless its carbon section could not be read."""
    page = run_page(run, choice, now_ms=_now_ms())
    carbon = run_section(run)
    return render_to_string(
        "runs/_run_body.html",
        {"run": run, "figures": page.figures, "work": _work(run, page.figures.energy_j), "run_gpus": page.run_gpus,
         "node_devices": page.node_devices, "plans": page.plans, "plans_cut": page.plans_cut,
         "drawn": page.drawn,
         "plots": page.drawn.plots, "nodes": page.figures.by_node(), "carbon": carbon,
         "picker": _picker(request, page.drawn), "live_poll_s": settings.WATTWISE_LIVE_POLL_S,
         "completeness": run_completeness(run), "silent_after_s": settings.WATTWISE_SILENT_AFTER_S,
         "power_limits": run_power_limits(run), "raw_expired": retention.expired([*page.run_gpus, *page.node_devices]),
         # No request given, so no context processor adds the viewer's user, messages or CSRF token; the
         # live-update block reads the path and query (only while the run streams, never cached).
         "request": request, "csrf_token": page_cache.CSRF_PLACEHOLDER},
    ), not (carbon or {}).get("error")


def _work(run: Run, energy_j: float) -> dict[str, Any]:
    """The run page's units of work: each unit's count and the run's energy and emissions per unit."""
    work = runs_work([run.pk])[run.pk]
    carbon = run_carbon(run, offset=False)
    emissions_g = carbon.totals.emissions_g if carbon.current and carbon.totals else None
    return {"units": per_unit(work, energy_j, emissions_g), "entered": {u: work.get(u) for u in work.entered},
            "choices": UNITS, "max_amount": MAX_AMOUNT}


@login_required
@require_POST
def run_work(request: HttpRequest, pk: int) -> HttpResponse:
    """Enter a run's units of work (members of its project only); a blank field clears an entered count."""
    run = _visible_run(request, pk)
    try:
        amounts = parse_amounts(request.POST)
    except BadWork as error:
        messages.error(request, f"Units of work not saved: {error}.")
    else:
        enter_work(run, amounts, request.user)
        versions.bump_runs([run.pk])  # at once, not only after commit: this request's redirect reads it
        messages.success(request, "Units of work saved.")
    return redirect(run.get_absolute_url() + "#units-of-work")


@login_required
def run_live(request: HttpRequest, pk: int) -> HttpResponse:
    """The run page's cards and charts for the same range, as JSON, for in-place updates."""
    run = _visible_run(request, pk)
    try:
        choice = parse_choice(request.GET)
    except BadRange as error:
        return JsonResponse({"error": str(error)}, status=400)
    page = run_page(run, choice, now_ms=_now_ms())
    cards = render_to_string("runs/_run_cards.html", {"run": run, "figures": page.figures,
                                                            "nodes": page.figures.by_node(), "drawn": page.drawn})
    span = render_to_string("runs/_sample_span.html", {"figures": page.figures})
    return _live_json(run.status, page.drawn, cards, span)


@login_required
def run_summary_json(request: HttpRequest, pk: int) -> JsonResponse:
    run = _visible_run(request, pk)
    return JsonResponse(run_figures(run).as_json())


def _visible_run_gpu(request: HttpRequest, pk: int, run_gpu_pk: int) -> tuple[Run, RunGpu]:
    run = _visible_run(request, pk)
    return run, get_object_or_404(RunGpu.objects.select_related("gpu__node"), pk=run_gpu_pk, run=run)


@login_required
def gpu_detail(request: HttpRequest, pk: int, run_gpu_pk: int) -> HttpResponse:
    run = page_cache.visible_run(request.user, pk)  # access first: no cache is read for a run one cannot see
    run_gpu = get_object_or_404(RunGpu.objects.select_related("gpu__node"), pk=run_gpu_pk, run=run)
    try:
        choice = parse_choice(request.GET)
    except BadRange as error:
        return _bad_range(request, error, request.path)
    body = page_cache.cached_text("gpu", run, choice, request.path,
                                  lambda: (_gpu_body(request, run, run_gpu, choice), True))
    return render(request, "runs/gpu.html", {"run": run, "label": gpu_label(run_gpu), "body": mark_safe(body)})


def _gpu_body(request: HttpRequest, run: Run, run_gpu: RunGpu, choice: RangeChoice) -> str:
    """A GPU page's body, holding nothing of the viewer: what is cached for a finished run."""
    page = gpu_page(run, run_gpu, choice, now_ms=_now_ms())
    return render_to_string(
        "runs/_gpu_body.html",
        {"run": run, "run_gpu": run_gpu, "gpu": run_gpu.gpu, "label": page.label, "drawn": page.drawn,
         "plots": page.drawn.plots, "picker": _picker(request, page.drawn), "live_poll_s": settings.WATTWISE_LIVE_POLL_S,
         "request": request, "raw_expired": retention.expired([run_gpu])},
    )


@login_required
def gpu_live(request: HttpRequest, pk: int, run_gpu_pk: int) -> HttpResponse:
    run, run_gpu = _visible_run_gpu(request, pk, run_gpu_pk)
    try:
        choice = parse_choice(request.GET)
    except BadRange as error:
        return JsonResponse({"error": str(error)}, status=400)
    page = gpu_page(run, run_gpu, choice, now_ms=_now_ms())
    cards = render_to_string("runs/_gpu_cards.html", {"run_gpu": run_gpu, "gpu": run_gpu.gpu,
                                                            "drawn": page.drawn})
    return _live_json(run.status, page.drawn, cards)


@login_required
def nodes(request: HttpRequest) -> HttpResponse:
    """The user's projects' nodes and enrolment tokens, with the messages refused in the last hour."""
    page = nodes_page(request.user, project=request.GET.get("project", ""))
    return render(request, "runs/nodes.html", {"page": page, "project": request.GET.get("project", ""),
                                               "raw_horizon": retention.horizon(),
                                               "raw_retention_days": settings.WATTWISE_RAW_RETENTION_DAYS})
