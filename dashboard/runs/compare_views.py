"""The compare page: a thin view over dashboard.runs.compare (names, totals, table), dashboard.runs.compare_series
(aligned series read in the database) and dashboard.runs.compare_charts (figures).

Everything the page shows is in its address (``runs``, ``baseline``, ``diff``, ``x``), so a link to it
can be shared; a link that names runs wrongly gets the page with its problems listed and HTTP 400.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.safestring import mark_safe

from dashboard.runs import compare, compare_charts, compare_iterations, compare_series, compare_work
from dashboard.runs.compare_charts import Point, Trace, color_for
from dashboard.telemetry import retention
from planner.units import MS_PER_HOUR, MS_PER_S, S_PER_HOUR

X_AXES = ("time", "step")
TRUE = ("1", "true", "on", "yes")


@login_required
def compare_runs(request: HttpRequest) -> HttpResponse:
    entries = compare.parse_entries(request.GET)
    selection = compare.resolve(request.user, entries)
    errors = list(selection.errors)
    baseline = 0
    if selection.ok:
        baseline, problem = compare.pick_baseline(selection, request.GET.get("baseline"))
        errors += [problem] if problem else []
    x = request.GET.get("x") or "time"
    if x not in X_AXES:
        errors.append(f"The x axis can be 'time' or 'step', not {x[:20]!r}.")
    if errors:
        return render(request, "runs/compare.html", {"errors": errors}, status=400)
    diff = request.GET.get("diff", "").lower() in TRUE
    return render(request, "runs/compare.html", page(selection, baseline, x=x, diff=diff))


def _traces(totals: list[compare.RunTotals], baseline: int, xs: list[Any], ys: list[Any]) -> list[Trace]:
    return [
        Trace(t.label, x, y, color_for(i), baseline=i == baseline)
        for i, (t, x, y) in enumerate(zip(totals, xs, ys, strict=True))
        if t.has_samples
    ]


def page(selection: compare.Selection, baseline: int, *, x: str, diff: bool) -> dict[str, Any]:
    """Everything the compare page shows, for runs that resolved without errors."""
    totals = compare.read_totals(selection.runs, selection.labels)
    raw_from_ms = retention.raw_from_ms()
    plan = compare_series.plan_for(
        [t.duration_ms for t in totals if t.has_samples], gpu_ms=sum(t.gpu_hours for t in totals) * MS_PER_HOUR,
        raw_expired=raw_from_ms is not None and any(
            t.readings is not None and t.readings.from_ms < raw_from_ms for t in totals),
    )
    series = compare_series.read_series([compare_series.RunReadings(t.run.pk, t.readings) for t in totals], plan)
    totals = compare.with_steps(totals, {s.run_id: s.steps.count if s.steps else None for s in series})
    sampled = [t for t in totals if t.has_samples]
    without_steps = [t.label for t, s in zip(totals, series, strict=True) if s.steps is None]
    step_reason = ""
    if without_steps:
        step_reason = "Steps need step markers in every run; none in " + ", ".join(without_steps) + "."
    notices = []
    if x == "step" and step_reason:
        notices.append(step_reason + " Showing elapsed time instead.")
        x = "time"

    seconds, unit = compare_charts.time_unit(max((t.duration_s for t in sampled), default=0.0))
    time_title = f"Time since the run's first sample ({unit})"
    plots = {
        ("time", "chart-power"): compare_charts.power_figure(
            _traces(totals, baseline, [s.power_elapsed_s / seconds for s in series], [s.power_w for s in series]),
            x_title=time_title),
        ("time", "chart-energy"): compare_charts.energy_figure(
            _traces(totals, baseline, [s.elapsed_s / seconds for s in series], [s.cumulative_j for s in series]),
            x_title=time_title),
    }
    if not step_reason:
        steps = [s.steps for s in series if s.steps is not None]
        plots[("step", "chart-power-step")] = compare_charts.power_figure(
            _traces(totals, baseline, [s.power_steps for s in steps], [s.power_w for s in steps]),
            x_title="Steps completed", title="Total power (all GPUs) by training step")
        plots[("step", "chart-energy-step")] = compare_charts.energy_figure(
            _traces(totals, baseline, [s.steps for s in steps], [s.cumulative_j for s in steps]),
            x_title="Steps completed", title="Cumulative energy by training step")

    pareto = compare.pareto_optimal([(t.duration_s, t.energy_j) for t in sampled])
    optimal = {t.run.pk for t, best in zip(sampled, pareto, strict=True) if best}
    scatter = compare_charts.time_energy_scatter([
        Point(t.label, t.duration_s / S_PER_HOUR, t.energy_kwh, color_for(i), t.run.pk in optimal)
        for i, t in enumerate(totals) if t.has_samples
    ])
    iteration_rows = compare_iterations.rows(totals, baseline)
    rows = compare.table(totals, baseline, iteration_rows)
    work_unit = compare_work.ranking_unit(totals)
    return {
        "work_unit": work_unit,
        "ranked": compare_work.ranked(totals, work_unit) if work_unit else [],
        "families": compare_work.tag_families(totals) if work_unit else [],
        "totals": totals,
        "columns": [
            {"totals": t, "color": color_for(i), "baseline": i == baseline, "pareto": t.run.pk in optimal}
            for i, t in enumerate(totals)
        ],
        "rows": rows,
        "iteration_rows": bool(iteration_rows),
        "identical_rows": sum(1 for r in rows if r.identical),
        "baseline": baseline,
        "diff": diff,
        "x": x,
        "step_reason": step_reason,
        "notices": notices,
        "charts": [
            {"axis": axis, "id": div_id, "json": mark_safe(compare_charts.script_json(figure)),
             "drawn": axis == x}
            for (axis, div_id), figure in plots.items()
        ],
        "scatter": mark_safe(compare_charts.script_json(scatter)),
        "pareto": [t.label for t in sampled if t.run.pk in optimal],
        "unsampled": [t.label for t in totals if not t.has_samples],
        "carbon_notes": [(t.label, t.carbon_note) for t in totals if t.carbon_note],
        "plan": plan,
        "plan_bucket_s": plan.bucket_ms / MS_PER_S,
        "runs_inputs": (selection.labels if any("," in label for label in selection.labels)
                        else [",".join(selection.labels)]),
        "runs_query": compare.canonical_query(selection.labels, 0, diff=False, x="time"),
        "canonical": compare.canonical_query(selection.labels, baseline, diff=diff, x=x),
    }
