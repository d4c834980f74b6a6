"""Planner pages: thin views over planner.plans.profiles, planner.plans.planning, planner.plans.results and planner.plans.charts.

Every page needs a login, and every lookup goes through the user's projects (``for_user``): a
profile, frontier, plan or download of another project is a 404, never a 403 that would confirm it exists.
"""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from dashboard.web.figures import figure_json
from planner import perseus
from planner.plans import charts, iterations, planning, profiles, results
from planner.plans.forms import PlanForm, SampleForm, StragglerForm, UploadForm
from planner.plans.measured import measured_plans
from planner.plans.models import FrontierJob, StageProfile
from planner.plans.realised import WARMUP_ITERATIONS

BLOBS = ("frontier_data", "realised_data")


def _profile(request: HttpRequest, pk: int) -> StageProfile:
    return get_object_or_404(
        StageProfile.objects.for_user(request.user).select_related("project", "node", "run", "created_by"), pk=pk
    )


def _job(request: HttpRequest, pk: int, *, with_data: bool = False) -> FrontierJob:
    jobs = FrontierJob.objects.for_user(request.user).select_related("profile__project")
    if not with_data:
        jobs = jobs.defer(*BLOBS)
    return get_object_or_404(jobs, pk=pk)


def _solved(request: HttpRequest, pk: int) -> planning.Solved:
    job = _job(request, pk, with_data=True)
    if job.status != FrontierJob.Status.DONE:
        raise Http404("this frontier has not been solved yet")
    return planning.load(job)


def _point(solved: planning.Solved, k: int) -> int:
    if not 0 <= k < len(solved.frontier):
        raise Http404(f"the frontier has {len(solved.frontier)} points")
    return k


def _download(content: str | bytes, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def _straggler_param(request: HttpRequest) -> float | None:
    raw = request.GET.get("straggler", "")
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if value > 0 and value < float("inf") else None


# --- profiles ---------------------------------------------------------------------------------------------


def _index(request: HttpRequest, upload: UploadForm | None = None, status: int = 200) -> HttpResponse:
    projects = Project.objects.for_user(request.user)
    listed = (
        StageProfile.objects.for_user(request.user).select_related("project", "node", "run").defer("csv_text")
        .annotate(num_frontiers=Count("frontiers")).order_by("-created_at", "-pk")
    )
    return render(request, "planner/index.html", {
        "profiles": listed,
        "upload": upload or UploadForm(projects=projects),
        "sample": SampleForm(projects=projects),
        "has_projects": projects.exists(),
    }, status=status)


@login_required
def index(request: HttpRequest) -> HttpResponse:
    return _index(request)


@login_required
@require_POST
def upload(request: HttpRequest) -> HttpResponse:
    form = UploadForm(request.POST, request.FILES, projects=Project.objects.for_user(request.user))
    if not form.is_valid():
        return _index(request, form, status=400)
    try:
        stored = profiles.store_upload(
            form.cleaned_data["project"], form.cleaned_data["file"].read(), name=form.default_name(),
            user=request.user, gpu_name=form.cleaned_data["gpu_name"].strip(),
        )
    except perseus.PlannerError as exc:
        form.add_error("file", str(exc))
        return _index(request, form, status=400)
    if not stored.created:
        messages.info(request, f"This profile is already stored in {stored.profile.project.name} as “{stored.profile.name}”.")
    return redirect(stored.profile)


@login_required
@require_POST
def sample(request: HttpRequest) -> HttpResponse:
    form = SampleForm(request.POST, projects=Project.objects.for_user(request.user))
    if not form.is_valid():
        return _index(request, status=400)
    stored = profiles.store_sample(form.cleaned_data["project"], request.user)
    return redirect(stored.profile)


PROFILE_CHART_MAX_STAGES = 32


@login_required
def profile_detail(request: HttpRequest, pk: int) -> HttpResponse:
    profile = _profile(request, pk)
    form = PlanForm(request.POST or None, profile=profile)
    if request.method == "POST" and form.is_valid():
        job, queued = planning.request_frontier(profile, form.parameters(), request.user)
        if not queued:
            messages.info(request, "This frontier was already requested with the same parameters: here it is.")
        return redirect(job)
    jobs = profile.frontiers.defer(*BLOBS).order_by("-created_at", "-pk")
    plots = []
    if profile.num_stages <= PROFILE_CHART_MAX_STAGES:
        parsed = form.parsed or perseus.parse_profile(profile.csv_text)
        plots.append(("chart-profile", figure_json(charts.profile_chart(results.profile_series(parsed)))))
    return render(request, "planner/profile.html", {
        "profile": profile, "form": form, "jobs": jobs, "plots": plots,
    }, status=400 if request.method == "POST" else 200)


@login_required
def profile_csv(request: HttpRequest, pk: int) -> HttpResponse:
    profile = _profile(request, pk)
    return _download(profile.csv_text, f"{results.slug(profile.name)}.csv", "text/csv")


# --- frontiers --------------------------------------------------------------------------------------------


def _straggler(request: HttpRequest, solved: planning.Solved) -> dict[str, Any]:
    """The straggler box: its form, and the chosen plan when asked."""
    runs = iterations.runs_with_steps(Run.objects.for_user(request.user))
    form = StragglerForm(request.GET if "straggler_s" in request.GET or "run" in request.GET else None, runs=runs)
    span = results.iteration_span(solved)
    out: dict[str, Any] = {"form": form, "choice": None, "measured": None, "error": None, "span": span}
    if form.is_bound and form.asked and form.is_valid():
        straggler_s = form.cleaned_data.get("straggler_s")
        run = form.chosen_run()
        try:
            if run is not None:
                out["measured"] = measured = iterations.measure(run)
                straggler_s = measured.iteration_time_s
                if not span.contains(straggler_s):
                    out |= _runs_inside(span, straggler_s, [r for r in runs if r != run])
            if straggler_s is not None and not out.get("shorter"):
                out["choice"] = results.choose(solved, straggler_s)
                out["view"] = results.ChoiceView(out["choice"])
        except (perseus.PlannerError, iterations.NoSteps) as exc:
            out["error"] = str(exc)
    return out


def _runs_inside(span: results.IterationSpan, straggler_s: float, others: list[Run]) -> dict[str, Any]:
    """A run's step time outside the frontier's span: which side, and the other runs whose step times fit."""
    inside = [m for m in iterations.measure_runs(others) if span.contains(m.iteration_time_s)]
    return {"outside": True, "shorter": straggler_s < span.fastest_s, "runs_inside": inside}


@login_required
def frontier_detail(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk, with_data=True)
    context: dict[str, Any] = {"job": job, "profile": job.profile, "stale": planning.is_stale(job)}
    if job.status == FrontierJob.Status.DONE:
        solved = planning.load(job)
        straggler = _straggler(request, solved)
        choice = straggler["choice"]
        intrinsic = results.ChoiceView(results.choose(solved, None))
        context.update(
            solved=solved, straggler=straggler, intrinsic=intrinsic, baseline=solved.baseline,
            rows=results.table_rows(solved), fastest=len(solved.frontier) - 1,
            plots=[("chart-frontier", figure_json(results.frontier_figure(solved, choice)))],
            plan_url_template=reverse("planner:plan", args=[job.pk, 0]).replace("/plans/0/", "/plans/__K__/"),
        )
    return render(request, "planner/frontier.html", context)


@login_required
def frontier_status(request: HttpRequest, pk: int) -> JsonResponse:
    job = _job(request, pk)
    return JsonResponse({
        "status": job.status,
        "done": job.progress_done,
        "total": job.progress_total,
        "fraction": job.progress_fraction,
        "error": job.error,
        "points": job.num_points,
        "url": job.get_absolute_url(),
    })


@login_required
def frontier_csv(request: HttpRequest, pk: int) -> HttpResponse:
    solved = _solved(request, pk)
    stem = f"{results.slug(solved.job.profile.name)}-{solved.job.num_stages}x{solved.job.num_microbatches}"
    return _download(solved.frontier.to_csv(), f"{stem}-frontier.csv", "text/csv")


@login_required
def frontier_realised_csv(request: HttpRequest, pk: int) -> HttpResponse:
    solved = _solved(request, pk)
    lines = ["point,time,energy,realised_time,realised_energy"]
    rt, re_ = solved.realised
    for k, (t, e, a, b) in enumerate(zip(solved.frontier.time_s.tolist(), solved.frontier.energy_j.tolist(),
                                          rt.tolist(), re_.tolist(), strict=True)):
        lines.append(f"{k},{t!r},{e!r},{a!r},{b!r}")
    stem = f"{results.slug(solved.job.profile.name)}-{solved.job.num_stages}x{solved.job.num_microbatches}"
    return _download("\n".join(lines) + "\n", f"{stem}-frontier-realised.csv", "text/csv")


@login_required
def frontier_archive(request: HttpRequest, pk: int) -> HttpResponse:
    job = _job(request, pk, with_data=True)
    if job.status != FrontierJob.Status.DONE or job.frontier_data is None:
        raise Http404("this frontier has not been solved yet")
    stem = f"{results.slug(job.profile.name)}-{job.num_stages}x{job.num_microbatches}"
    return _download(bytes(job.frontier_data), f"{stem}.plans.npz", "application/octet-stream")


# --- plans ------------------------------------------------------------------------------------------------


@login_required
def plan_detail(request: HttpRequest, pk: int, k: int) -> HttpResponse:
    solved = _solved(request, pk)
    k = _point(solved, k)
    straggler_s = _straggler_param(request)
    figures = results.plan_figures(solved, k, straggler_s)
    basis = "planned" if request.GET.get("basis") == "planned" else "realised"
    timeline = results.timeline_figure(solved, k, basis)
    n = len(solved.frontier)
    query = f"?straggler={straggler_s!r}" if straggler_s is not None else ""
    return render(request, "planner/plan.html", {
        "job": solved.job, "profile": solved.job.profile, "solved": solved, "k": k, "n": n, "figures": figures,
        "ranks": results.rank_rows(figures.plan, solved.profile.max_freq_mhz), "basis": basis,
        "straggler_s": straggler_s, "query": query,
        "plots": [("chart-timeline", figure_json(timeline))] if timeline is not None else [],
        "previous": k - 1 if k > 0 else None, "next": k + 1 if k + 1 < n else None, "fastest": n - 1,
        "is_fastest": k == n - 1,
        "frontier_url": reverse("planner:frontier", args=[pk]),
        "measured_plans": measured_plans(request.user, pk), "warmup_iterations": WARMUP_ITERATIONS,
    })


@login_required
def plan_rank_json(request: HttpRequest, pk: int, k: int, rank: int) -> HttpResponse:
    solved = _solved(request, pk)
    plan = perseus.plan_at(solved.frontier, _point(solved, k))
    if not 0 <= rank < len(plan.stages):
        raise Http404("no such rank")
    return _download(results.rank_json(plan, rank), f"{results.download_stem(solved, k)}-rank{rank}.json", "application/json")


@login_required
def plan_json(request: HttpRequest, pk: int, k: int) -> HttpResponse:
    solved = _solved(request, pk)
    figures = results.plan_figures(solved, _point(solved, k), _straggler_param(request))
    return _download(results.plan_json(solved, figures), f"{results.download_stem(solved, k)}.json", "application/json")


@login_required
def plan_csv(request: HttpRequest, pk: int, k: int) -> HttpResponse:
    solved = _solved(request, pk)
    plan = perseus.plan_at(solved.frontier, _point(solved, k))
    return _download(plan.to_csv(), f"{results.download_stem(solved, k)}.csv", "text/csv")


@login_required
def plan_zip(request: HttpRequest, pk: int, k: int) -> HttpResponse:
    solved = _solved(request, pk)
    figures = results.plan_figures(solved, _point(solved, k), _straggler_param(request))
    return _download(results.ranks_zip(solved, figures), f"{results.download_stem(solved, k)}-ranks.zip", "application/zip")
