"""The planner demo: the shipped sample with a solved 8 × 12 frontier, quickly and once."""

from __future__ import annotations

import time

import pytest

from dashboard.projects.models import Project
from planner.plans.demo import seed_planner_demo
from planner.plans.models import FrontierJob, StageProfile

pytestmark = pytest.mark.django_db


def test_seeding_the_planner_demo_solves_the_sample_quickly_and_once():
    project = Project.objects.create(name="demo")
    started = time.perf_counter()
    job = seed_planner_demo(project)
    assert time.perf_counter() - started < 5  # about half a second on a laptop
    assert job.status == FrontierJob.Status.DONE and job.num_points == 1410
    assert (job.num_stages, job.num_microbatches, job.unit_time_s, job.p_blocking_w) == (8, 12, 0.001, 83.64)
    assert seed_planner_demo(project).pk == job.pk
    assert StageProfile.objects.count() == 1 and FrontierJob.objects.count() == 1
