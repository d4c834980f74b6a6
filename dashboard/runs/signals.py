"""The run pages' receivers: carbon figures stored or flagged stale, and a project's offset policy or prices
changed, give the runs (or the project) a new version token (:mod:`dashboard.telemetry.versions`), so no
cached page of them is read again. What telemetry stores replaces run tokens by telemetry's own receivers."""

from __future__ import annotations

from typing import Any

from django.dispatch import receiver

from dashboard.telemetry import versions
from planner.carbon.figures import figures_changed


@receiver(figures_changed, dispatch_uid="runs.page_cache.carbon")
def carbon_changed_pages(sender: Any, run_ids: list[int] | None = None, project_id: int | None = None,
                         **kwargs: Any) -> None:
    if run_ids:
        versions.bump_runs(run_ids)
    if project_id is not None:
        versions.bump_project(project_id)
