"""Receivers that keep stored emissions in step with their inputs: samples stored for a run (throttled
while it streams), a run that closed, and changes to what a project's figures depend on (sites, node
assignments, defaults, instruments). Each queues work after commit and never raises into the code that
sent the signal or saved the model (ingest included)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from dashboard.telemetry.signals import run_closed, samples_stored
from planner.carbon import recompute
from planner.carbon.figures import announce_figures
from planner.carbon.models import (
    Certificate,
    CreditPrice,
    NodeSite,
    OffsetPolicy,
    PowerPurchase,
    ProjectCarbon,
    Site,
)
from planner.carbon.recompute import mark_stale_for_project, queue_recompute, queue_recompute_stale

log = logging.getLogger(__name__)


@receiver(samples_stored, dispatch_uid="carbon.samples_stored")
def samples_arrived(sender: Any, run_id: int, **kwargs: Any) -> None:
    try:
        recompute.samples_stored(run_id)
    except Exception:  # carbon must never fail ingest; the close or the periodic task catches up
        log.exception("could not queue the carbon recompute of run %s after its samples", run_id)


@receiver(run_closed, dispatch_uid="carbon.run_closed")
def run_finished(sender: Any, run_id: int, **kwargs: Any) -> None:
    try:
        queue_recompute([run_id])
    except Exception:
        log.exception("could not queue the carbon recompute of run %s after it closed", run_id)


def _project_changed(project_id: int) -> None:
    if mark_stale_for_project(project_id):
        queue_recompute_stale()


@receiver(post_save, sender=Site, dispatch_uid="carbon.site_saved")
@receiver(post_delete, sender=Site, dispatch_uid="carbon.site_deleted")
@receiver(post_save, sender=Certificate, dispatch_uid="carbon.certificate_saved")
@receiver(post_delete, sender=Certificate, dispatch_uid="carbon.certificate_deleted")
@receiver(post_save, sender=PowerPurchase, dispatch_uid="carbon.ppa_saved")
@receiver(post_delete, sender=PowerPurchase, dispatch_uid="carbon.ppa_deleted")
@receiver(post_save, sender=ProjectCarbon, dispatch_uid="carbon.settings_saved")
def project_input_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    # A project's defaults are saved for the first time by its sites page (reads never create the
    # row), so a new ProjectCarbon row is a change like any other.
    _project_changed(instance.project_id)


@receiver(post_save, sender=OffsetPolicy, dispatch_uid="carbon.offset_policy_saved")
@receiver(post_delete, sender=OffsetPolicy, dispatch_uid="carbon.offset_policy_deleted")
@receiver(post_save, sender=CreditPrice, dispatch_uid="carbon.credit_price_saved")
@receiver(post_delete, sender=CreditPrice, dispatch_uid="carbon.credit_price_deleted")
def quote_changed(sender: type, instance: Any, **kwargs: Any) -> None:
    # Offsets are never subtracted: no figure is stale, but every run page of the project quotes them.
    project_id = instance.project_id
    transaction.on_commit(lambda: announce_figures(project_id=project_id))


@receiver(post_save, sender=NodeSite, dispatch_uid="carbon.assignment_saved")
@receiver(post_delete, sender=NodeSite, dispatch_uid="carbon.assignment_deleted")
def assignment_changed(sender: type[NodeSite], instance: NodeSite, **kwargs: Any) -> None:
    from dashboard.telemetry.models import Node

    project_id = Node.objects.filter(pk=instance.node_id).values_list("project_id", flat=True).first()
    if project_id is not None:
        _project_changed(project_id)
