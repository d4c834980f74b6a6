"""The plan page's "Measured in runs": every run that ran one of the frontier's plans, its predicted against
realised iteration time and energy, and its saving against the baseline run it names."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from tests.factories import register
from tests.planner.plans.conftest import solve_now
from tests.planner.plans.loop_runs import iteration_events, plan_fields, store_run

pytestmark = pytest.mark.django_db

# Two ranks: warm-up, then 4 steps. Baseline 1.00 s and 120 + 80 J; planned 1.004 s and 100 + 66 J.
BASELINE = ([[3.0, 2.0] + [1.0] * 4, [3.0, 2.0] + [0.99] * 4], [[500.0, 400.0] + [120.0] * 4, [500.0, 400.0] + [80.0] * 4])
PLANNED = ([[3.0, 2.0] + [1.004] * 4, [3.0, 2.0] + [1.0] * 4], [[500.0, 400.0] + [100.0] * 4, [500.0, 400.0] + [66.0] * 4])


def row(html: str, run: str) -> str:
    found = re.search(rf'<tr data-run="{run}".*?</tr>', html, re.S)
    assert found, f"no row for {run}"
    return re.sub(r"\s+", " ", found.group(0))


def cell(row_html: str, figure: str) -> str:
    return re.search(rf'data-figure="{figure}">([^<]*)<', row_html).group(1)


@pytest.fixture
def loop(world):
    job = solve_now(world.ours)
    node = register("loop-node", "vision")
    plan = plan_fields(job.pk, 2, predicted_time_s=1.0, predicted_energy_j=170.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0)
    store_run(node, "loop-baseline", iteration_events(*BASELINE))
    store_run(node, "loop-planned", iteration_events(*PLANNED, plans={(0, 0): plan, (1, 0): plan}))
    return job


def test_the_plan_page_shows_each_planned_run_predicted_against_realised(client, world, loop):
    client.force_login(world.ana)
    html = client.get(reverse("planner:plan", args=[loop.pk, 2])).content.decode()
    assert 'id="measured-in-runs"' in html
    planned = row(html, "loop-planned")
    assert 'class="highlight"' in planned  # this page's plan
    assert cell(planned, "realised-time") == "1.00 s" and cell(planned, "realised-energy") == "166 J"
    assert cell(planned, "predicted-saving") == "15.0 %" and cell(planned, "realised-saving") == "17.0 %"
    assert cell(planned, "time-change") == "+0.4 %"
    assert "1.00 s" in planned and "170 J" in planned and ">loop-baseline</a><br>" in planned
    assert '<span class="note nowrap">1.00 s, 200 J</span>' in planned  # the baseline's own figures
    assert "/compare/?runs=vision/loop-baseline&amp;runs=vision/loop-planned" in planned
    # Every figure through the unit filters: no raw floats.
    assert not re.search(r"\d\.\d{4,}", planned)


def test_another_plan_of_the_frontier_lists_the_runs_too_without_highlighting_them(client, world, loop):
    client.force_login(world.ana)
    html = client.get(reverse("planner:plan", args=[loop.pk, 0])).content.decode()
    assert 'class="highlight"' not in row(html, "loop-planned")


def test_runs_of_a_project_the_user_is_not_in_are_not_shown(client, world, loop):
    plan = plan_fields(loop.pk, 2, predicted_time_s=1.0, predicted_energy_j=170.0, baseline_time_s=0.99,
                       baseline_energy_j=200.0)
    store_run(register("bob-node", "speech"), "bob-planned", iteration_events(*PLANNED, plans={(0, 0): plan, (1, 0): plan}))
    client.force_login(world.ana)
    html = client.get(reverse("planner:plan", args=[loop.pk, 2])).content.decode()
    assert "bob-planned" not in html and "loop-planned" in html


def test_a_frontier_no_run_used_says_how_runs_get_there(client, world):
    job = solve_now(world.ours)
    client.force_login(world.ana)
    html = client.get(reverse("planner:plan", args=[job.pk, 0])).content.decode()
    assert 'id="measured-runs-empty"' in html and 'id="measured-runs"' not in html
