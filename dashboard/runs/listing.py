"""The runs list as a plain function: filters and sort keys from query parameters, applied to a queryset."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db.models import F, QuerySet

from dashboard.projects.models import Project, Visitor
from dashboard.runs.summaries import with_totals
from dashboard.telemetry.models import Run, RunTag

if TYPE_CHECKING:
    from dashboard.runs.summaries import RunWithTotals

SORT_KEYS = {
    "name": "name",
    "started": "started_at",
    "energy": "energy_j",
    "duration": "duration_s",
    "gpus": "gpu_count",
    "power": "mean_power_w",
}
DEFAULT_SORT = "-started"


@dataclass(frozen=True)
class Listing:
    runs: QuerySet[RunWithTotals]
    sort: str
    project: str
    tag: str
    status: str
    projects: list[Project]
    tags: list[str]

    @property
    def statuses(self) -> list[tuple[str, str]]:
        """The statuses a run can be filtered by: (value, label)."""
        return Run.Status.choices


def list_runs(user: Visitor, params: Mapping[str, str]) -> Listing:
    runs = Run.objects.for_user(user)
    projects = list(Project.objects.for_user(user))
    tags = sorted(set(RunTag.objects.filter(run__in=runs).values_list("name", flat=True)))
    project, tag, status = params.get("project", ""), params.get("tag", ""), params.get("status", "")
    if project:
        runs = runs.filter(project__name=project)
    if tag:
        runs = runs.filter(tags__name=tag)
    if status in Run.Status.values:
        runs = runs.filter(status=status)
    sort = params.get("sort", DEFAULT_SORT)
    key = sort.removeprefix("-")
    if key not in SORT_KEYS:
        sort, key = DEFAULT_SORT, DEFAULT_SORT.removeprefix("-")
    field = F(SORT_KEYS[key])
    order = field.desc(nulls_last=True) if sort.startswith("-") else field.asc(nulls_last=True)
    ordered = with_totals(runs).select_related("project").prefetch_related("tags").order_by(order, "-pk")
    return Listing(ordered, sort, project, tag, status, projects, tags)
