"""The admin lists profiles and frontiers without loading their stored frontiers."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from tests.planner.plans.conftest import solve_now

pytestmark = pytest.mark.django_db


def test_the_admin_shows_profiles_and_frontiers(client, world):
    job = solve_now(world.ours)
    client.force_login(get_user_model().objects.create_superuser("root", password="pw-root"))
    for url in (reverse("admin:planner_stageprofile_changelist"), reverse("admin:planner_frontierjob_changelist"),
                reverse("admin:planner_stageprofile_change", args=[world.ours.pk]),
                reverse("admin:planner_frontierjob_change", args=[job.pk])):
        assert client.get(url).status_code == 200, url
