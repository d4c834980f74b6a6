"""Carbon pages that are not about one project: the overview and the intensity data (upload, coverage,
live providers). Thin views over plain functions; project pages are in :mod:`project_views`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.carbon import import_jobs
from planner.carbon.access import can_import, may_import_for
from planner.carbon.forms import ImportForm
from planner.carbon.live import provider_statuses
from planner.carbon.models import ImportJob, IntensityImport
from planner.carbon.section import run_hours as hours_of_run
from planner.carbon.stored import zones_with_data


@login_required
def index(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.for_user(request.user).annotate(
        runs_count=Count("runs", distinct=True),
        emissions_g=Sum("runs__carbon__emissions_g"),
        market_emissions_g=Sum("runs__carbon__market_emissions_g"),
        stale=Count("runs__carbon", filter=Q(runs__carbon__stale=True), distinct=True),
    )
    return render(request, "carbon/index.html", {"projects": projects, "coverage": zones_with_data(request.user)[:12],
                                                 "providers": provider_statuses()})


@login_required
def intensity_data(request: HttpRequest) -> HttpResponse:
    projects = Project.objects.for_user(request.user)
    if request.method == "POST":
        if not can_import(request.user):
            raise PermissionDenied("only project members may import data")
        form = ImportForm(request.POST, request.FILES, projects=projects, may_share=may_import_for(request.user, None))
        if form.is_valid():
            data = form.cleaned_data
            job = import_jobs.submit(data["file"], project=data["project"], user=request.user, zone=data["zone"],
                                     basis=data["basis"], timezone_name=data["timezone"])
            messages.info(request, f"{job.filename}: received; its import is shown below.")
            return redirect("carbon:data")
    else:
        form = ImportForm(projects=projects, may_share=may_import_for(request.user, None))
    jobs = list(ImportJob.objects.filter(requested_by=request.user.pk).select_related("project")[:5])
    return render(request, "carbon/data.html", {
        "form": form,
        "coverage": zones_with_data(request.user),
        "imports": IntensityImport.objects.visible_to(request.user).select_related("imported_by", "project")[:50],
        "providers": provider_statuses(),
        "can_import": can_import(request.user),
        "jobs": jobs,
        "importing": any(not job.finished for job in jobs),
    })


@login_required
def import_job(request: HttpRequest, pk: int) -> JsonResponse:
    """How far one of the user's own uploads has got (the data page polls it)."""
    job = get_object_or_404(ImportJob.objects.filter(requested_by=request.user.pk), pk=pk)
    return JsonResponse({
        "state": job.state,
        "finished": job.finished,
        "rows_read": job.rows_read,
        "bytes_read": job.bytes_read,
        "size_bytes": job.size_bytes,
        "fraction": job.progress_fraction,
        "message": job.message,
    })


@login_required
def run_hours(request: HttpRequest, pk: int) -> HttpResponse:
    """A run's hour-by-hour carbon table; the run page loads it (``?fragment=1``) when it is opened.

    A day of eight nodes is 192 rows: rendering them with the page would cost it more than its charts.
    """
    run = get_object_or_404(Run.objects.for_user(request.user), pk=pk)
    context = {"run": run, "hours": hours_of_run(run)}
    if request.GET.get("fragment"):
        return render(request, "carbon/_run_hours_table.html", context)
    return render(request, "carbon/run_hours.html", context)
