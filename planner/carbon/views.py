"""Carbon pages that are not about one project: the overview and the intensity data (upload, coverage,
live providers). Thin views over plain functions; project pages are in :mod:`project_views`."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q, Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner.carbon.access import can_import, may_import_for
from planner.carbon.forms import ImportForm
from planner.carbon.imports import import_file
from planner.carbon.live import provider_statuses
from planner.carbon.models import IntensityImport
from planner.carbon.section import run_hours as hours_of_run
from planner.carbon.stored import zones_with_data
from planner.grid_carbon.importers import CarbonImportError


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
            upload = form.cleaned_data["file"]
            try:
                result = import_file(
                    upload.read(), upload.name, zone=form.cleaned_data["zone"] or None,
                    basis=form.cleaned_data["basis"], project=form.cleaned_data["project"],
                    timezone_name=form.cleaned_data["timezone"], user=request.user,
                )
            except CarbonImportError as exc:
                form.add_error(None, f"{upload.name}: {exc}. Nothing was imported.")
            else:
                messages.success(request, result.message)
                return redirect("carbon:data")
    else:
        form = ImportForm(projects=projects, may_share=may_import_for(request.user, None))
    return render(request, "carbon/data.html", {
        "form": form,
        "coverage": zones_with_data(request.user),
        "imports": IntensityImport.objects.visible_to(request.user).select_related("imported_by", "project")[:50],
        "providers": provider_statuses(),
        "can_import": can_import(request.user),
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
