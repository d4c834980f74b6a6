"""A project's carbon pages: overview, sites and contracts, region preferences, advice, offsets.

Every page needs a login and membership of the project (others get 404). Changing what a project's
figures depend on (sites, node assignments, defaults, contracts, credit prices) also needs the
``carbon.change_site`` permission or staff status (see :mod:`access`).
"""

from __future__ import annotations

from datetime import timedelta
from itertools import pairwise
from typing import Any

from django.conf import settings as django_settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.text import slugify

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, RunNode
from dashboard.web.figures import figure_json
from planner.carbon import charts
from planner.carbon.access import can_manage
from planner.carbon.accounting import store_run_carbon
from planner.carbon.advising import from_past_run, get_advice, preference_for, preview
from planner.carbon.forms import (
    AdviceForm,
    AssignForm,
    CertificateForm,
    CreditPriceForm,
    OffsetPolicyForm,
    PowerPurchaseForm,
    PreferenceForm,
    ProjectCarbonForm,
    RetirementForm,
    SiteForm,
)
from planner.carbon.models import (
    Certificate,
    CreditPrice,
    ImportedRun,
    NodeSite,
    PowerPurchase,
    RunCarbon,
    Site,
)
from planner.carbon.offsetting import ledger_csv, policy_for, prices_table, project_ledger
from planner.carbon.placing import project_settings
from planner.carbon.state import run_energies_j, state_of


def _require_manager(request: HttpRequest, project: Project) -> None:
    if not can_manage(request.user, project):
        raise PermissionDenied("changing a project's carbon accounting needs the carbon.change_site permission")


@login_required
def overview(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    if request.method == "POST":
        if request.POST.get("action") == "recompute":
            for run in project.runs.all():
                store_run_carbon(run)
            messages.success(request, "Emissions of every run were recomputed from the data stored now.")
        return redirect("carbon:project", pk=project.pk)
    stored = {rc.run_id: rc for rc in RunCarbon.objects.filter(run__project=project)}
    all_runs = list(project.runs.order_by("-started_at"))
    energies = run_energies_j(r.pk for r in all_runs)
    runs = [(run, stored.get(run.pk), state_of(stored.get(run.pk), energies.get(run.pk, 0.0))) for run in all_runs]
    return render(request, "carbon/project.html", {
        "project": project,
        "runs": runs,
        "recompute_s": django_settings.WATTWISE_CARBON_RECOMPUTE_S,
        "totals": {
            "emissions_g": sum(rc.emissions_g for rc in stored.values()),
            "market_emissions_g": sum(rc.market_emissions_g for rc in stored.values()),
            "energy_j": sum(rc.energy_j for rc in stored.values()),
        },
        "imported_runs": ImportedRun.objects.filter(project=project)[:100],
        "tab": "overview",
    })


@login_required
def sites(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    settings = project_settings(project.pk)
    forms: dict[str, Any] = {
        "site_form": SiteForm(project=project, prefix="site"),
        "assign_form": AssignForm(project=project, prefix="assign"),
        "defaults_form": ProjectCarbonForm(instance=settings, prefix="defaults"),
        "certificate_form": CertificateForm(prefix="cert"),
        "ppa_form": PowerPurchaseForm(prefix="ppa"),
    }
    if request.method == "POST":
        _require_manager(request, project)
        done, forms = _sites_post(request, project, forms)
        if done:
            messages.success(request, done + " Affected runs will be recomputed.")
            return redirect("carbon:sites", pk=project.pk)
    nodes = []
    assignments = {a.node_id: a.site for a in NodeSite.objects.filter(node__project=project).select_related("site")}
    for node in Node.objects.filter(project=project).order_by("name"):
        last = RunNode.objects.filter(node=node).exclude(zone="", region="").order_by("-opened_at").first()
        nodes.append({"node": node, "site": assignments.get(node.pk), "agent": last})
    return render(request, "carbon/sites.html", {
        "project": project,
        "sites": Site.objects.filter(project=project),
        "nodes": nodes,
        "settings": settings,
        "certificates": Certificate.objects.filter(project=project).order_by("vintage_year", "pk"),
        "ppas": PowerPurchase.objects.filter(project=project).order_by("vintage_year", "pk"),
        "can_manage": can_manage(request.user, project),
        "tab": "sites",
        **forms,
    })


def _sites_post(request: HttpRequest, project: Project, forms: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Apply one form of the sites page; return a success message, or "" and the forms with errors."""
    action = request.POST.get("action")
    if action == "add_site":
        site_form = SiteForm(request.POST, project=project, prefix="site")
        if site_form.is_valid():
            site = site_form.save()
            return f"Site {site.name} added.", forms
        return "", {**forms, "site_form": site_form}
    if action == "delete_site":
        site = get_object_or_404(Site, project=project, pk=request.POST.get("site"))
        site.delete()
        return f"Site {site.name} deleted; its nodes fall back to their agent flags or the project default.", forms
    if action == "assign":
        assign_form = AssignForm(request.POST, project=project, prefix="assign")
        if assign_form.is_valid():
            node, site = assign_form.cleaned_data["node"], assign_form.cleaned_data["site"]
            with transaction.atomic():
                if site is None:
                    NodeSite.objects.filter(node=node).delete()
                    return f"{node.name} has no site now.", forms
                NodeSite.objects.update_or_create(node=node, defaults={"site": site})
            return f"{node.name} is now on site {site.name}.", forms
        return "", {**forms, "assign_form": assign_form}
    if action == "defaults":
        defaults_form = ProjectCarbonForm(request.POST, instance=project_settings(project.pk), prefix="defaults")
        if defaults_form.is_valid():
            defaults_form.save()
            return "Project defaults and market factors saved.", forms
        return "", {**forms, "defaults_form": defaults_form}
    if action in ("add_certificate", "add_ppa"):
        form_class, key, prefix = ((CertificateForm, "certificate_form", "cert") if action == "add_certificate"
                                   else (PowerPurchaseForm, "ppa_form", "ppa"))
        contract_form = form_class(request.POST, prefix=prefix)
        if contract_form.is_valid():
            contract_form.instance.project = project
            contract_form.save()
            return "Contract added.", forms
        return "", {**forms, key: contract_form}
    if action == "delete_certificate":
        get_object_or_404(Certificate, project=project, pk=request.POST.get("item")).delete()
        return "Certificates removed.", forms
    if action == "delete_ppa":
        get_object_or_404(PowerPurchase, project=project, pk=request.POST.get("item")).delete()
        return "PPA removed.", forms
    return "", forms


@login_required
def preferences(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    preference = preference_for(project.pk)
    previewing = False
    if request.method == "POST":
        form = PreferenceForm(request.POST, instance=preference)
        previewing = request.POST.get("action") == "preview"
        if form.is_valid() and not previewing:
            form.save()
            messages.success(request, "Region preferences saved; advice now ranks only regions that pass them.")
            return redirect("carbon:advice", pk=project.pk)
    else:
        form = PreferenceForm(instance=preference)
    # The saved preferences, or (on "Preview") the ones typed, unsaved; none while the form has errors.
    shown = None if form.is_bound and not form.is_valid() else preview(project, form.instance)
    return render(request, "carbon/preferences.html", {
        "project": project, "form": form, "tab": "preferences", "preview": shown, "previewing": previewing,
    })


@login_required
def advice(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    runs = project.runs.order_by("-started_at")
    form = AdviceForm(request.GET or None, runs=runs, project_id=project.pk)
    context: dict[str, Any] = {"project": project, "form": form, "tab": "advice",
                               "preference": preference_for(project.pk)}
    if form.is_bound and form.is_valid():
        planned = _planned(form.cleaned_data, project)
        if isinstance(planned, str):
            form.add_error(None, planned)
        else:
            try:
                result, origin = get_advice(project, **planned)
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                context.update(_advice_context(result, origin, planned))
                shown = request.GET.copy()  # show the PUE the candidates got, for the user to change
                shown["candidate_pue"] = f"{planned['candidate_pue']:g}"
                form.data = shown
    return render(request, "carbon/advice.html", context)


def _planned(data: dict[str, Any], project: Project) -> dict[str, Any] | str:
    """The advice inputs from the form (a past run fills what was left empty), or what is missing."""
    past = from_past_run(data["run"]) if data.get("run") else None
    if data.get("run") and past is None:
        return ("That run has no carbon figures yet (no energy, or they are being computed); type the energy and "
                "duration instead.")
    energy_kwh = data["energy_kwh"] if data.get("energy_kwh") is not None else past.energy_kwh  # type: ignore[union-attr]
    duration_h = data["duration_h"] if data.get("duration_h") is not None else past.duration_h  # type: ignore[union-attr]
    settings = project_settings(project.pk)
    where = data.get("current_where") or (past.where if past else "") or settings.default_where
    if not where:
        return "Say where the run would run today (current region), or set a project default zone."
    pue = data.get("current_pue") or (past.pue if past else settings.default_pue)
    start = data["earliest_start"]
    # The run as it was (nothing about it retyped): compare with what it emitted, per node and hour.
    as_it_ran = past is not None and not any(data.get(k) for k in ("energy_kwh", "current_where", "current_pue"))
    return {
        "candidate_pue": data.get("candidate_pue") or (past.pue if past else settings.default_pue),
        "measured": past if as_it_ran else None,
        "energy_kwh": energy_kwh,
        "duration_h": duration_h,
        "interruptible": data.get("interruptible", False),
        "earliest_start_utc": start,
        "latest_start_utc": start + timedelta(hours=data.get("window_h") or 0),
        "current_where": where,
        "current_pue": pue,
    }


def _advice_context(result: Any, origin: str, planned: dict[str, Any]) -> dict[str, Any]:
    top = list(result.options[:10])
    # A pausable run's chosen hours may not be contiguous: say so rather than show only a start.
    paused = [o.where for o in top if any(b - a > timedelta(hours=1) for a, b in pairwise(o.hours_utc))]
    starts = {o.where: ([p.start_utc for p in o.per_start], [p.emissions_g for p in o.per_start]) for o in top[:5]}
    baseline_label = "as it ran" if planned.get("measured") else "now, current region"
    plots = [("chart-advice", figure_json(
        charts.advice_by_start(starts, result.baseline.predicted_emissions_g, baseline_label=baseline_label)
    ))]
    best = top[0] if top else None
    return {
        "advice": result, "options": top, "best": best, "origin": origin, "planned": planned, "plots": plots,
        "best_paused": bool(best and best.where in paused), "paused_regions": paused,
        "more_options": max(len(result.options) - len(top), 0),
    }


@login_required
def offsets(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    policy = policy_for(project.pk)
    forms: dict[str, Any] = {
        "policy_form": OffsetPolicyForm(instance=policy, prefix="policy"),
        "price_form": CreditPriceForm(prefix="price", initial={"currency": "USD", "as_of": timezone.now().date()}),
        "retire_form": RetirementForm(project=project, prefix="retire",
                                      initial={"retired_on": timezone.now().date(), "currency": "USD"}),
    }
    if request.method == "POST":
        _require_manager(request, project)
        action = request.POST.get("action")
        if action == "policy":
            policy_form = OffsetPolicyForm(request.POST, instance=policy, prefix="policy")
            if policy_form.is_valid():
                policy_form.save()
                messages.success(request, "Offset policy saved.")
                return redirect("carbon:offsets", pk=project.pk)
            forms["policy_form"] = policy_form
        elif action == "price":
            price_form = CreditPriceForm(request.POST, prefix="price")
            if price_form.is_valid():
                price = price_form.cleaned_data
                CreditPrice.objects.update_or_create(
                    project=project, credit_type=price["credit_type"],
                    defaults={k: price[k] for k in ("price_per_tonne", "currency", "source", "as_of")},
                )
                messages.success(request, "Price saved.")
                return redirect("carbon:offsets", pk=project.pk)
            forms["price_form"] = price_form
        elif action == "retire":
            retire_form = RetirementForm(request.POST, project=project, prefix="retire")
            if retire_form.is_valid():
                retire_form.save()
                messages.success(request, "Retirement recorded in the ledger (emissions stay as reported).")
                return redirect("carbon:offsets", pk=project.pk)
            forms["retire_form"] = retire_form
    ledger = project_ledger(project)
    stored = {rc.run_id: rc for rc in RunCarbon.objects.filter(run__project=project)}
    energies = run_energies_j(stored)
    states = {run_id: state_of(rc, energies.get(run_id, 0.0)) for run_id, rc in stored.items()}
    return render(request, "carbon/offsets.html", {
        "project": project, "policy": policy,
        "lines": [(line, states.get(line.run.pk)) for line in ledger.lines], "ledger": ledger,
        "prices": prices_table(project.pk), "retirements": ledger.retirements,
        "can_manage": can_manage(request.user, project), "tab": "offsets", **forms,
    })


@login_required
def offsets_csv(request: HttpRequest, pk: int) -> HttpResponse:
    project = get_object_or_404(Project.objects.for_user(request.user), pk=pk)
    response = HttpResponse(ledger_csv(project), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slugify(project.name) or "project"}-offsets-ledger.csv"'
    return response
