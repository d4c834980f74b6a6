"""Model signals that keep stored emissions in step: a finished run, and changes to what a project's
figures depend on (sites, node assignments, defaults, instruments). Each queues work after commit and
never raises into the code that saved the model (ingest included)."""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from dashboard.telemetry.models import Run
from planner.carbon.models import Certificate, NodeSite, PowerPurchase, ProjectCarbon, Site
from planner.carbon.recompute import mark_stale_for_project, queue_recompute, queue_recompute_stale


@receiver(post_save, sender=Run, dispatch_uid="carbon.run_finished")
def run_finished(sender: type[Run], instance: Run, update_fields: Any = None, **kwargs: Any) -> None:
    if instance.status == Run.FINISHED and (update_fields is None or "status" in update_fields):
        queue_recompute([instance.pk])


def _project_changed(project_id: int) -> None:
    if mark_stale_for_project(project_id):
        queue_recompute_stale()


@receiver(post_save, sender=Site, dispatch_uid="carbon.site_saved")
@receiver(post_delete, sender=Site, dispatch_uid="carbon.site_deleted")
@receiver(post_save, sender=Certificate, dispatch_uid="carbon.certificate_saved")
@receiver(post_delete, sender=Certificate, dispatch_uid="carbon.certificate_deleted")
@receiver(post_save, sender=PowerPurchase, dispatch_uid="carbon.ppa_saved")
@receiver(post_delete, sender=PowerPurchase, dispatch_uid="carbon.ppa_deleted")
def project_input_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    _project_changed(instance.project_id)


@receiver(post_save, sender=ProjectCarbon, dispatch_uid="carbon.settings_saved")
def settings_changed(sender: type[ProjectCarbon], instance: ProjectCarbon, created: bool = False, **kwargs: Any) -> None:
    if not created:  # a new row holds the defaults the figures already assumed
        _project_changed(instance.project_id)


@receiver(post_save, sender=NodeSite, dispatch_uid="carbon.assignment_saved")
@receiver(post_delete, sender=NodeSite, dispatch_uid="carbon.assignment_deleted")
def assignment_changed(sender: type[NodeSite], instance: NodeSite, **kwargs: Any) -> None:
    from dashboard.telemetry.models import Node

    project_id = Node.objects.filter(pk=instance.node_id).values_list("project_id", flat=True).first()
    if project_id is not None:
        _project_changed(project_id)
