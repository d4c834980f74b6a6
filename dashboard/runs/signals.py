"""The run pages' receivers: what the writers announce after they commit gives a run (or a project's runs)
a new page-cache version token (:mod:`dashboard.runs.page_cache`), so no cached page of it is read again."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from dashboard.runs import page_cache
from dashboard.telemetry.signals import run_changed, run_closed, samples_stored
from planner.carbon.figures import figures_changed


@receiver(samples_stored, dispatch_uid="runs.page_cache.samples_stored")
@receiver(run_closed, dispatch_uid="runs.page_cache.run_closed")
@receiver(run_changed, dispatch_uid="runs.page_cache.run_changed")
def run_changed_pages(sender: Any, run_id: int, **kwargs: Any) -> None:
    page_cache.bump_runs([run_id])


@receiver(figures_changed, dispatch_uid="runs.page_cache.carbon")
def carbon_changed_pages(sender: Any, run_ids: list[int] | None = None, project_id: int | None = None,
                         **kwargs: Any) -> None:
    if run_ids:
        page_cache.bump_runs(run_ids)
    if project_id is not None:
        page_cache.bump_project(project_id)
