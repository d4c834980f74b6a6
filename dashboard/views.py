"""Pages: thin views over dashboard.listing, dashboard.summaries, dashboard.series and dashboard.charts."""

from __future__ import annotations

import plotly.io as pio
from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils.safestring import SafeString, mark_safe
from plotly.graph_objects import Figure

from dashboard import charts, series
from dashboard.listing import SORT_KEYS, list_runs
from dashboard.models import RunGpu
from dashboard.summaries import run_figures, visible_runs
from planner.carbon.section import run_section


def _figure_json(figure: Figure) -> SafeString:
    # Same escaping as Django's json_script, so the JSON can sit inside a <script> element.
    text = pio.to_json(figure, validate=False)
    return mark_safe(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def _gpu_label(run_gpu: RunGpu) -> str:
    return f"{run_gpu.gpu.node.name}/gpu{run_gpu.gpu.index}"


def healthz(request: HttpRequest) -> HttpResponse:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return HttpResponse("ok", content_type="text/plain")


@login_required
def runs_list(request: HttpRequest) -> HttpResponse:
    listing = list_runs(request.user, request.GET)
    page = Paginator(listing.runs, 50).get_page(request.GET.get("page"))
    return render(
        request,
        "dashboard/runs.html",
        {"listing": listing, "page": page, "sort_keys": SORT_KEYS},
    )


@login_required
def run_detail(request: HttpRequest, pk: int) -> HttpResponse:
    run = get_object_or_404(visible_runs(request.user).select_related("project"), pk=pk)
    figures = run_figures(run)
    run_gpus = list(RunGpu.objects.filter(run=run).select_related("gpu__node"))
    span = series.span_of(run_gpus)
    plots: list[tuple[str, SafeString]] = []
    if span is not None:
        # Many GPUs overlaid read better at a coarser resolution; the GPU page draws the full detail.
        points = max(200, settings.WATTWISE_CHART_POINTS // max(len(run_gpus), 1))
        power = {
            _gpu_label(rg): series.gpu_series(rg, span, ("power_w",), points=points)["power_w"] for rg in run_gpus
        }
        power_field = run_gpus[0].gpu.power_field if run_gpus else "average"
        plots.append(("chart-power", _figure_json(charts.power_over_time(power, power_field=power_field))))
        plots.append((
            "chart-energy-per-gpu",
            _figure_json(charts.energy_per_gpu(
                [_gpu_label(rg) for rg in run_gpus], [rg.energy_j for rg in run_gpus],
                [rg.gpu.node.name for rg in run_gpus],
            )),
        ))
        by_node: dict[str, dict[str, float]] = {}
        for rg in run_gpus:
            by_node.setdefault(rg.gpu.node.name, {})[f"gpu{rg.gpu.index}"] = rg.energy_j
        plots.append(("chart-nodes", _figure_json(charts.node_breakdown(by_node))))
        minutes, cumulative = series.cumulative_energy(run_gpus)
        per_node: dict[str, object] = {}
        for rg in run_gpus:
            node = rg.gpu.node.name
            per_node[node] = per_node[node] + cumulative[rg.pk] if node in per_node else cumulative[rg.pk]
        plots.append(("chart-cumulative", _figure_json(charts.cumulative_energy(minutes, per_node))))  # type: ignore[arg-type]
    return render(
        request,
        "dashboard/run.html",
        {"run": run, "figures": figures, "run_gpus": run_gpus, "plots": plots, "nodes": figures.by_node(),
         "carbon": run_section(run)},
    )


@login_required
def run_summary_json(request: HttpRequest, pk: int) -> JsonResponse:
    run = get_object_or_404(visible_runs(request.user).select_related("project"), pk=pk)
    return JsonResponse(run_figures(run).as_json())


@login_required
def gpu_detail(request: HttpRequest, pk: int, run_gpu_pk: int) -> HttpResponse:
    run = get_object_or_404(visible_runs(request.user).select_related("project"), pk=pk)
    run_gpu = get_object_or_404(RunGpu.objects.select_related("gpu__node"), pk=run_gpu_pk, run=run)
    plots: list[tuple[str, SafeString]] = []
    span = series.span_of([run_gpu])
    if span is not None:
        data = series.gpu_series(run_gpu, span)
        field = run_gpu.gpu.power_field
        plots.append(("chart-power", _figure_json(
            charts.metric_over_time(data["power_w"], title=f"Power ({field} NVML power)", unit="W"))))
        minutes, cumulative = series.cumulative_energy([run_gpu])
        plots.append(("chart-energy", _figure_json(charts.cumulative_gpu_energy(minutes, cumulative[run_gpu.pk]))))
        plots.append(("chart-clock", _figure_json(
            charts.metric_over_time(data["sm_clock_mhz"], title="SM clock", unit="MHz"))))
        plots.append(("chart-util", _figure_json(
            charts.metric_over_time(data["util_pct"], title="GPU utilisation", unit="%"))))
        plots.append(("chart-temp", _figure_json(
            charts.metric_over_time(data["temp_c"], title="Temperature", unit="°C"))))
    return render(
        request,
        "dashboard/gpu.html",
        {"run": run, "run_gpu": run_gpu, "gpu": run_gpu.gpu, "label": _gpu_label(run_gpu), "plots": plots},
    )
