"""Fixtures for the planner app: users in projects, stored profiles and solved frontiers.

Most tests plan a small synthetic profile (4 stages × 4 microbatches: a few milliseconds to solve);
the GPT-3 175B sample (8 × 12, about 0.3 s) is used where its published figures matter.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from dashboard.projects.models import Project
from planner import perseus
from planner.plans import planning, profiles
from planner.plans.models import FrontierJob, StageProfile
from tests.factories import member

SMALL = planning.Parameters(num_microbatches=4, unit_time_s=0.001, p_blocking_w=83.64)
GPT3 = planning.Parameters(num_microbatches=12, unit_time_s=0.001, p_blocking_w=83.64)


def small_csv(stages: int = 4, seed: int = 0) -> bytes:
    return perseus.synthetic_profile_csv(stages, "a100", seed=seed).encode()


def solve_now(profile: StageProfile, params: planning.Parameters = SMALL) -> FrontierJob:
    """Create the job and solve it in-process (what the task does), without going through on_commit."""
    job = FrontierJob.objects.create(
        profile=profile, cache_key=planning.cache_key(profile.digest, params.problem(profile.num_stages)),
        num_stages=profile.num_stages, num_microbatches=params.num_microbatches, unit_time_s=params.unit_time_s,
        p_blocking_w=params.p_blocking_w, schedule=params.schedule, mode=params.mode,
    )
    planning.solve_job(job.pk)
    job.refresh_from_db()
    assert job.status == FrontierJob.Status.DONE, job.error
    return job


@pytest.fixture(autouse=True)
def _fast_passwords(settings):
    """Users are created in most tests here; the default password hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@dataclass
class World:
    """Ana in project vision, Bob in project speech, each with a stored profile."""

    ana: object
    bob: object
    vision: Project
    speech: Project
    ours: StageProfile
    theirs: StageProfile


@pytest.fixture
def world(db) -> World:
    ana, bob = member("ana", "vision"), member("bob", "speech")
    vision, speech = Project.objects.get(name="vision"), Project.objects.get(name="speech")
    ours = profiles.store_upload(vision, small_csv(), name="small-ours").profile
    theirs = profiles.store_upload(speech, small_csv(seed=1), name="small-theirs").profile
    return World(ana, bob, vision, speech, ours, theirs)


@pytest.fixture
def gpt3_job(db) -> FrontierJob:
    """The GPT-3 175B sample, 8 × 12, τ = 1 ms, solved, in project vision (ana is a member)."""
    if not Project.objects.filter(name="vision").exists():
        member("ana", "vision")
    stored = profiles.store_sample(Project.objects.get(name="vision"))
    return solve_now(stored.profile, GPT3)
