"""Celery tasks of the planner: ids or one agent message in, the work in plain functions (idempotent).

* ``planner.solve_frontier`` (queue ``celery``): solve and store one ``FrontierJob``
  (:func:`planner.plans.planning.solve_job`); a job already solved is left alone, so a repeated delivery is
  harmless, and a worker killed mid-solve leaves the message on the broker (late ack) for another one.
* ``wattwise.stage_profile`` (queue ``telemetry``, published by agents): store a recorded stage profile
  in the node's project (:func:`planner.plans.profiles.receive_stage_profile`), through telemetry's delivery
  (database retries, dead letters).
"""

from __future__ import annotations

from typing import Any

from celery import Task, shared_task

from dashboard.telemetry import delivery
from planner.plans import planning
from wattwise_agent.wire import TASK_STAGE_PROFILE

TASK_SOLVE_FRONTIER = "planner.solve_frontier"


@shared_task(name=TASK_SOLVE_FRONTIER)
def solve_frontier(job_id: int) -> dict[str, Any]:
    return {"job": job_id, "status": planning.solve_job(job_id)}


@shared_task(name=TASK_STAGE_PROFILE, bind=True)
def stage_profile(self: Task, envelope: Any) -> dict[str, Any]:
    # In a worker: database retries and dead letters (dashboard.telemetry.delivery; the app registers the receiver).
    return delivery.run_task(self, TASK_STAGE_PROFILE, envelope)
