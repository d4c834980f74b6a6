"""A real Celery worker on Redis solves frontiers and takes agents' profiles, by task name."""

from __future__ import annotations

import pytest
import redis

from dashboard.projects.models import Project
from planner.plans import planning, profiles
from planner.plans.models import FrontierJob, StageProfile
from planner.plans.tasks import TASK_SOLVE_FRONTIER
from tests.factories import T0_MS, envelope, register
from tests.planner.plans.conftest import GPT3
from tests.worker_process import flush, publisher, wait_until, worker
from wattwise_agent.wire import TASK_STAGE_PROFILE, TELEMETRY_QUEUE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]


def test_a_worker_solves_a_queued_frontier_and_stores_an_agents_profile(postgres, redis_url):
    flush(redis_url)
    node = register("gpu-node-01", "vision")
    sample = profiles.store_sample(Project.objects.get(name="vision")).profile
    problem = GPT3.problem(sample.num_stages)
    job = FrontierJob.objects.create(
        profile=sample, cache_key=planning.cache_key(sample.digest, problem), num_stages=8, num_microbatches=12,
        unit_time_s=0.001, p_blocking_w=83.64,
    )
    client = publisher(redis_url)
    client.send_task(TASK_SOLVE_FRONTIER, args=[job.pk])
    agent_csv = profiles.sample_csv().decode().replace("23.80547200000007", "23.8")
    message = envelope(node, {"run": None, "name": "recorded", "csv": agent_csv, "gpu_name": "NVIDIA A100",
                              "p_blocking_w": None, "recorded_ms": T0_MS}, kind="stage_profile")
    client.send_task(TASK_STAGE_PROFILE, args=[message], queue=TELEMETRY_QUEUE)
    client.send_task(TASK_STAGE_PROFILE, args=[message], queue=TELEMETRY_QUEUE)  # delivered twice

    with worker(redis_url) as process:
        wait_until(lambda: FrontierJob.objects.filter(pk=job.pk, status__in=["done", "failed"]).exists(), 60,
                   "the frontier", process)
        broker = redis.Redis.from_url(redis_url)
        wait_until(lambda: broker.llen(TELEMETRY_QUEUE) == 0 and broker.hlen("unacked") == 0, 30,
                   "both copies of the agent's profile", process)

    job.refresh_from_db()
    assert job.status == FrontierJob.Status.DONE, job.error
    assert job.num_points == 1410 and job.progress_done == job.progress_total > 0
    assert StageProfile.objects.filter(name="recorded", node__name="gpu-node-01").count() == 1
