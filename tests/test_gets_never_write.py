"""A GET never writes: every page, live update, export, API read and /metrics, of every app, answers a
signed-in member (or a bearer token) without one INSERT, UPDATE, DELETE or row lock.

The walk covers every route the URL resolver knows (Django's own admin aside), filled with real objects:
the quick demo (finished runs with carbon figures, a node on a site, a solved frontier), a run that is
streaming with figures behind its energy, one not computed yet, one flagged stale, one without energy,
and a second project with every carbon setting, prices, a retirement and imported intensity. A route
missing from ``REQUESTS`` fails the test, so a new page is checked from the day it is added.

What a GET hands to a task is not the request's write: the rule is "the request itself never writes;
tasks may". With eager tasks (no broker, as here and in `make run`) a task runs inside the request, so
the guard ignores statements issued while a Celery task executes (``task_prerun``/``task_postrun``);
the test checks that such a task did run (an API token's ``last_used_at``, recorded by
``projects.record_token_use``). Sessions: the client signs in before the guard starts.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date
from typing import Any

import pytest
from celery.signals import task_postrun, task_prerun
from django.core.management import call_command
from django.db import connection
from django.urls import URLPattern, URLResolver, get_resolver

from dashboard.demo import seed as demo
from dashboard.projects.models import ApiToken, Project
from dashboard.projects.tokens import issue_token
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Node, Run, RunGpu
from dashboard.telemetry.nodes import create_enrolment_token
from planner.carbon.imports import import_file
from planner.carbon.models import (
    Certificate,
    CreditPrice,
    CreditType,
    ImportJob,
    NodeSite,
    OffsetPolicy,
    OffsetRetirement,
    ProjectCarbon,
    RegionPreference,
    RunCarbon,
    Site,
)
from planner.plans.models import FrontierJob, StageProfile
from tests.factories import register, simple_batch
from tests.planner.carbon.support import T0, LiveRun, em_hourly_csv, recompute_figures, stream_hours

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("quick_demo")]

WRITE = re.compile(
    r"\b(INSERT\s+INTO|DELETE\s+FROM|UPDATE\s+\"?\w+\"?\s+SET|TRUNCATE|FOR\s+(NO\s+KEY\s+)?UPDATE)\b", re.I
)


class WriteGuard:
    """An ``execute_wrapper`` that records every write the request issues, and ignores what tasks issue."""

    def __init__(self) -> None:
        self.in_task = 0
        self.task_statements = 0
        self.writes: list[str] = []

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.in_task:
            self.task_statements += 1
        elif WRITE.search(sql):
            self.writes.append(sql)
        return execute(sql, params, many, context)

    def task_started(self, **_: Any) -> None:
        self.in_task += 1

    def task_ended(self, **_: Any) -> None:
        self.in_task -= 1

    @contextmanager
    def watching(self) -> Iterator[WriteGuard]:
        task_prerun.connect(self.task_started, weak=False)
        task_postrun.connect(self.task_ended, weak=False)
        try:
            with connection.execute_wrapper(self):
                yield self
        finally:
            task_prerun.disconnect(self.task_started)
            task_postrun.disconnect(self.task_ended)


# --- the data -----------------------------------------------------------------------------------------------


def seed_world(capture: Any) -> dict[str, Any]:
    """The demo, a streaming run and a second project with every carbon setting; returns what fills paths."""
    with capture(execute=True):  # the recomputes queued as the demo's runs close
        call_command("seed_demo", "--quiet", stdout=io.StringIO())
    user = demo.demo_user()
    project = Project.objects.get(name=demo.DEMO_PROJECT)
    # Streaming, its figures behind its energy: the first batch was recomputed, the second is not yet due.
    node = register("gpu-live", demo.DEMO_PROJECT)
    with capture(execute=True):
        live = LiveRun(node, "streaming", zone="SE-SE3")
        live.hour(1.0)
        live.hour(0.5)
    # Streaming, nothing computed yet; one flagged stale; one opened without samples.
    LiveRun(register("gpu-new", demo.DEMO_PROJECT), "just-started", zone="DE").hour(0.2)
    RunCarbon.objects.filter(run__name=demo.DEMO_RUNS[1].name).update(stale=True)
    Run.objects.create(project=project, name="no-samples-yet")

    vision = Project.objects.create(name="vision")
    vision.members.add(user)
    other = register("gpu-de", "vision")
    site = Site.objects.create(project=vision, name="frankfurt", where="DE", pue=1.2)
    NodeSite.objects.create(node=Node.objects.get(name="gpu-de"), site=site)
    ProjectCarbon.objects.create(project=vision, default_where="FR", supplier_factor_g_per_kwh=250.0)
    Certificate.objects.create(project=vision, energy_kwh=1.0, vintage_year=2026, market_boundary="EU")
    OffsetPolicy.objects.create(project=vision, credit_type=CreditType.DURABLE_REMOVAL, buffer_pct=10.0)
    CreditPrice.objects.create(project=vision, credit_type=CreditType.DURABLE_REMOVAL, price_per_tonne=150.0,
                               currency="EUR", source="supplier quote", as_of=date(2026, 1, 1))
    RegionPreference.objects.create(project=vision, allowed="SE-SE3 1.1\nFR\n", max_intensity_g_per_kwh=200.0)
    import_file(em_hourly_csv("DE", T0, [300.0, 200.0]).encode(), "DE_2026_hourly.csv")
    stream_hours(other, "vit", [1.0, 2.0])
    recompute_figures("vit")
    # A refused message and an enrolment token, for the nodes page and the runs list's warning.
    ingest.ingest_batch({**simple_batch(other), "sig": "0" * 64})
    create_enrolment_token("vision", "cluster-a")
    OffsetRetirement.objects.create(project=vision, run=Run.objects.get(name="vit"), retired_on=date(2026, 2, 1),
                                    credit_type=CreditType.DURABLE_REMOVAL, tonnes=0.001, price_per_tonne=150.0)

    # The user's uploads: one a worker is importing, one that failed (the data page lists both).
    uploads = [ImportJob.objects.create(requested_by=user, project=vision, filename=f"DE_{state}.csv", path="/gone",
                                        size_bytes=1000, bytes_read=400, rows_read=12, state=state)
               for state in (ImportJob.State.RUNNING, ImportJob.State.FAILED)]

    runs = list(Run.objects.select_related("project").order_by("pk"))
    job = FrontierJob.objects.get(status=FrontierJob.Status.DONE)
    return {
        "user": user,
        "token": issue_token(user),
        "runs": runs,
        "gpus": {run.pk: RunGpu.objects.filter(run=run).values_list("pk", flat=True).first() for run in runs},
        "projects": [project, vision],
        "profiles": list(StageProfile.objects.values_list("pk", flat=True)),
        "frontier": job.pk,
        "import_jobs": [upload.pk for upload in uploads],
    }


# --- what to ask for -----------------------------------------------------------------------------------------


def every_route() -> dict[str, str]:
    """``namespace:name`` → path pattern of every route (admin aside)."""
    found: dict[str, str] = {}

    def walk(resolver: URLResolver, prefix: str, namespaces: tuple[str, ...]) -> None:
        for entry in resolver.url_patterns:
            if isinstance(entry, URLResolver):
                if entry.app_name == "admin":
                    continue
                walk(entry, prefix + str(entry.pattern), namespaces + ((entry.namespace,) if entry.namespace else ()))
            elif isinstance(entry, URLPattern):
                found[":".join((*namespaces, entry.name or "root"))] = "/" + prefix + str(entry.pattern)

    walk(get_resolver(), "", ())
    return found


def fill(pattern: str, **values: Any) -> str:
    def value(match: re.Match[str]) -> str:
        return str(values[match.group(1)])

    return re.sub(r"<(?:\w+:)?(\w+)>", value, pattern)


Request = tuple[str, dict[str, str]]  # path, query


def requests_for(world: dict[str, Any], routes: dict[str, str]) -> dict[str, list[Request]]:
    runs, gpus, projects = world["runs"], world["gpus"], world["projects"]
    frontier, labels = world["frontier"], ",".join(f"{r.project.name}/{r.name}" for r in runs)

    def per_run(name: str, **query: str) -> list[Request]:
        return [(fill(routes[name], pk=r.pk), query) for r in runs]

    def per_gpu(name: str) -> list[Request]:
        return [(fill(routes[name], pk=r.pk, run_gpu_pk=gpus[r.pk]), {}) for r in runs if gpus[r.pk]]

    def per_project(name: str, **query: str) -> list[Request]:
        return [(fill(routes[name], pk=p.pk), query) for p in projects]

    def plain(name: str, **query: str) -> list[Request]:
        return [(routes[name], query)]

    def api_runs(name: str) -> list[Request]:
        return [(fill(routes[name], run_id=r.pk), {}) for r in runs]

    def api_gpus(name: str) -> list[Request]:
        return [(fill(routes[name], run_id=r.pk, gpu_id=gpus[r.pk]), {}) for r in runs if gpus[r.pk]]

    def api_projects(name: str) -> list[Request]:
        return [(fill(routes[name], project_id=p.pk), {}) for p in projects]

    def per_member(name: str) -> list[Request]:
        return [(fill(routes[name], pk=p.pk, user_pk=world["user"].pk), {}) for p in projects]

    def frontier_route(name: str, **query: str) -> list[Request]:
        return [(fill(routes[name], pk=frontier, k=0, rank=0, frontier_id=frontier, point=0), query)]

    past_run = next(r for r in runs if r.name == demo.DEMO_RUNS[0].name)
    return {
        "root": plain("root"),
        "runs": plain("runs") + plain("runs", status="running", sort="-energy"),
        "run": per_run("run"),
        "run_live": per_run("run_live"),
        "run_summary": per_run("run_summary"),
        "run_gpu": per_gpu("run_gpu"),
        "run_gpu_live": per_gpu("run_gpu_live"),
        "compare": plain("compare", runs=labels) + plain("compare", runs=labels, x="step", diff="1"),
        "nodes": plain("nodes") + plain("nodes", project=projects[1].name),
        "runs_csv": plain("runs_csv"),
        "run_samples_csv": per_run("run_samples_csv") + per_run("run_samples_csv", resolution="minute"),
        "run_summary_csv": per_run("run_summary_csv"),
        "run_model_card": per_run("run_model_card"),
        "run_work": per_run("run_work"),
        "metrics": plain("metrics"),
        "planner:index": plain("planner:index"),
        "planner:upload": plain("planner:upload"),
        "planner:sample": plain("planner:sample"),
        "planner:profile": [(fill(routes["planner:profile"], pk=pk), {}) for pk in world["profiles"]],
        "planner:profile_csv": [(fill(routes["planner:profile_csv"], pk=pk), {}) for pk in world["profiles"]],
        **{name: frontier_route(name) for name in (
            "planner:frontier", "planner:frontier_status", "planner:frontier_csv", "planner:frontier_realised_csv",
            "planner:frontier_archive", "planner:plan", "planner:plan_rank", "planner:plan_json", "planner:plan_csv",
            "planner:plan_zip",
        )},
        "carbon:index": plain("carbon:index"),
        "carbon:data": plain("carbon:data"),
        "carbon:import_job": [(fill(routes["carbon:import_job"], pk=pk), {}) for pk in world["import_jobs"]],
        "api:get_import_job": [(fill(routes["api:get_import_job"], job_id=pk), {}) for pk in world["import_jobs"]],
        "carbon:run_hours": per_run("carbon:run_hours") + per_run("carbon:run_hours", fragment="1"),
        "carbon:project": per_project("carbon:project"),
        "carbon:sites": per_project("carbon:sites"),
        "carbon:preferences": per_project("carbon:preferences"),
        "carbon:advice": per_project("carbon:advice") + per_project(
            "carbon:advice", run=str(past_run.pk), earliest_start="2026-03-10 08:00", window_h="12",
            interruptible="on"),
        "carbon:offsets": per_project("carbon:offsets"),
        "carbon:offsets_csv": per_project("carbon:offsets_csv"),
        "projects:index": plain("projects:index"),
        "project_report": per_project("project_report") + per_project("project_report", period="2026-Q1", format="csv")
        + per_project("project_report", period="custom", **{"from": "2026-01-01", "to": "2026-03-31"}, format="md"),
        "projects:members": per_project("projects:members"),
        "projects:member_add": per_project("projects:member_add"),
        "projects:member_role": per_member("projects:member_role"),
        "projects:member_remove": per_member("projects:member_remove"),
        "api-index": plain("api-index"),
        "api:openapi-json": plain("api:openapi-json"),
        "api:openapi-view": plain("api:openapi-view"),
        "api:api-root": plain("api:api-root"),
        "api:list_projects": plain("api:list_projects"),
        "api:get_project": api_projects("api:get_project"),
        "api:list_runs": plain("api:list_runs"),
        "api:get_run": api_runs("api:get_run"),
        "api:list_gpus": api_runs("api:list_gpus"),
        "api:get_gpu": api_gpus("api:get_gpu"),
        "api:get_samples": api_gpus("api:get_samples"),
        "api:get_buckets": api_gpus("api:get_buckets"),
        "api:get_run_carbon": api_runs("api:get_run_carbon"),
        "api:model_card": plain("api:model_card", runs=str(past_run.pk)),
        "api:project_report": api_projects("api:project_report"),
        "api:get_project_carbon": api_projects("api:get_project_carbon"),
        "api:get_offsets": api_projects("api:get_offsets"),
        "api:get_preferences": api_projects("api:get_preferences"),
        "api:list_datasets": plain("api:list_datasets"),
        "api:list_intensity": plain("api:list_intensity", zone="DE"),
        "api:list_imports": plain("api:list_imports"),
        "api:upload_import": plain("api:upload_import"),  # the same path: its GET is the list
        "api:list_profiles": plain("api:list_profiles"),
        "api:ingest": plain("api:ingest"),
        "api:get_profile": [(fill(routes["api:get_profile"], profile_id=pk), {}) for pk in world["profiles"]],
        "api:list_frontiers": plain("api:list_frontiers"),
        "api:request_frontier": [(fill(routes["api:request_frontier"], profile_id=pk), {}) for pk in world["profiles"]],
        **{name: frontier_route(name) for name in (
            "api:get_frontier", "api:list_points", "api:get_choice", "api:get_plan", "api:list_frontier_runs",
        )},
        "healthz": plain("healthz"),
        "login": plain("login"),
        "password_change": plain("password_change"),
        "password_change_done": plain("password_change_done"),
        "password_reset": plain("password_reset"),
        "password_reset_done": plain("password_reset_done"),
        "password_reset_confirm": [(fill(routes["password_reset_confirm"], uidb64="MQ", token="x-y"), {})],
        "password_reset_complete": plain("password_reset_complete"),
    }


NOT_A_READ = {"logout"}  # signing out is a POST (a GET is refused with 405)
# Asked anyway: refusing a GET must not write either.
POST_ONLY = {"run_work", "planner:upload", "planner:sample", "projects:member_add", "projects:member_role",
             "projects:member_remove", "api:ingest", "api:request_frontier"}
# A model card refuses (409) while a run's figures are not current, as most here are by design.
NEEDS_CURRENT_FIGURES = {"run_model_card", "api:model_card"}
TOKEN_ROUTES = re.compile(r"^/(api/|metrics$)")


def test_no_get_of_any_page_export_api_read_or_metrics_writes(client, django_capture_on_commit_callbacks):
    world = seed_world(django_capture_on_commit_callbacks)
    routes = every_route()
    requests = requests_for(world, routes)
    assert set(routes) - NOT_A_READ <= set(requests), f"routes without requests: {set(routes) - set(requests)}"
    client.force_login(world["user"])
    auth = {"Authorization": f"Bearer {world['token']}"}
    ApiToken.objects.update(last_used_at=None)

    guard = WriteGuard()
    answered: dict[str, int] = {}
    wrote: dict[str, list[str]] = {}
    with guard.watching():
        for name, asked in requests.items():
            for path, query in asked:
                headers = auth if TOKEN_ROUTES.match(path) else {}
                before = len(guard.writes)
                response = client.get(path, query, headers=headers)
                label = f"{name} {path}{'?' if query else ''}{'&'.join(f'{k}={v}' for k, v in query.items())}"
                answered[label] = response.status_code
                if len(guard.writes) > before:
                    wrote[label] = guard.writes[before:]

    assert not wrote, "GET requests wrote:\n" + "\n".join(f"{label}: {sql[:200]}" for label, sqls in wrote.items()
                                                           for sql in sqls)
    failed = {label: status for label, status in answered.items()
              if status not in ((405,) if label.split()[0] in POST_ONLY
                                else (200, 302, 409) if label.split()[0] in NEEDS_CURRENT_FIGURES else (200, 302))}
    assert not failed, f"routes that did not answer: {failed}"
    # Work handed to a task is the task's: the token's last use was recorded, by the task, not the request.
    assert ApiToken.objects.get().last_used_at is not None and guard.task_statements > 0


def test_the_guard_sees_a_requests_write_and_leaves_a_tasks_alone():
    from dashboard.projects.tasks import record_token_use
    from tests.factories import member

    issue_token(member("ana"))
    token = ApiToken.objects.get()
    with WriteGuard().watching() as guard:
        Project.objects.create(name="written")
        record_token_use.delay(token.pk, "2026-01-01T00:00:00+00:00")  # eager: runs here, as a task
    assert len(guard.writes) == 1 and guard.writes[0].upper().startswith("INSERT")
    assert guard.task_statements >= 1 and ApiToken.objects.get().last_used_at is not None
