"""The profile page lists its plans and links to their frontiers; the frontier page draws planned and
realised frontiers with the all-max point and savings; the plan page draws one iteration's timeline."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from planner import perseus
from planner.plans import charts, planning
from planner.plans.models import FrontierJob
from tests.planner.plans.conftest import solve_now
from tests.planner.plans.figures import figures_in, values

pytestmark = pytest.mark.django_db


def test_the_profile_page_lists_its_plans_and_links_to_their_frontiers(client, world):
    done = solve_now(world.ours)
    queued, _ = planning.request_frontier(world.ours, planning.Parameters(6, 0.001, 83.64))
    client.force_login(world.ana)
    html = client.get(world.ours.get_absolute_url()).content.decode()
    table = html[html.index('id="plans-table"'):]
    assert f'href="{done.get_absolute_url()}"' in table and f'href="{queued.get_absolute_url()}"' in table
    assert f'href="{reverse("planner:plan", args=[done.pk, done.num_points - 1])}"' in table  # the fastest plan
    assert ">done<" in table and ">queued<" in table


def test_the_frontier_page_shows_planned_and_realised_with_the_all_max_point(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    html = client.get(gpt3_job.get_absolute_url()).content.decode()
    figure = figures_in(html)["chart-frontier"]
    names = [trace["name"] for trace in figure["data"]]
    assert names[:3] == ["realised (profiled times and energies)", "planned (solver's model)", "all at max frequency"]
    realised, planned, all_max = figure["data"][:3]
    assert len(values(realised["x"])) == len(values(planned["x"]))
    assert len(values(planned["x"])) == gpt3_job.num_points == 1410
    assert values(all_max["x"])[0] == pytest.approx(2.8365, abs=1e-4)
    # Hover shows the plan; customdata starts with the point's index, which a click opens.
    custom = values(planned["customdata"])
    assert custom.shape == (1410, 7 + 8) and custom[-1, 0] == 1409
    assert "mean MHz per stage" in planned["hovertemplate"]
    texts = " ".join(a["text"] for a in figure["layout"]["annotations"])
    assert "fastest plan</b>: -16.3 % energy" in texts and "all at max frequency" in texts
    # Planned and realised figures side by side.
    assert "Planned and realised, side by side" in html and "6141.0 J" in html and "6138.4 J" in html
    assert f'data-plan-url="/planner/frontiers/{gpt3_job.pk}/plans/__K__/"' in html
    assert "16.3 %" in html


def test_a_large_frontier_is_drawn_with_about_two_thousand_points(world):
    from planner.plans import results

    idx = results.display_indices(71_000, keep=(70_999, 12_345))
    assert 2000 <= len(idx) <= 2002 and idx[0] == 0 and idx[-1] == 70_999 and 12_345 in idx


def test_the_hover_frequencies_are_the_plans_own(gpt3_job):
    from planner.plans import results

    solved = planning.load(gpt3_job)
    idx = np.array([0, 500, 1409])
    means = results.stage_mean_frequencies(solved.frontier, idx)
    for row, k in zip(means, idx, strict=True):
        plan = perseus.plan_at(solved.frontier, int(k))
        expected = [np.mean([s.freq_mhz for s in steps]) for steps in plan.stages]
        np.testing.assert_allclose(row, expected)


def test_the_plan_page_draws_one_iteration_coloured_by_frequency_with_the_critical_path(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    fastest = gpt3_job.num_points - 1
    response = client.get(reverse("planner:plan", args=[gpt3_job.pk, fastest]))
    html = response.content.decode()
    timeline = figures_in(html)["chart-timeline"]
    bars = timeline["data"][0]
    assert bars["type"] == "bar" and bars["orientation"] == "h"
    assert len(bars["y"]) == 8 * 12 * 2
    entries = perseus.timeline(planning.load(gpt3_job).frontier, planning.load(gpt3_job).profile, fastest)
    freqs = planning.load(gpt3_job).profile.frequencies_mhz
    assert min(e.freq_mhz for e in entries) < 1410 == max(e.freq_mhz for e in entries)
    assert bars["marker"]["color"] == charts.frequency_colors([e.freq_mhz for e in entries], min(freqs), max(freqs))
    outlines = bars["marker"]["line"]["color"]
    critical = [c == "#e03131" for c in outlines]
    assert 0 < sum(critical) < len(critical)
    assert critical == [e.critical for e in entries]
    assert timeline["data"][1]["name"] == "critical path (red outline)"
    assert timeline["data"][2]["marker"]["colorbar"]["title"]["text"] == "MHz"
    assert "Plan 1409 of 1410" in html and "fastest" in html
    assert response.context["figures"].realised.time_s == pytest.approx(2.8502, abs=1e-4)


def test_the_planned_timeline_is_offered_too(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    html = client.get(reverse("planner:plan", args=[gpt3_job.pk, 0]) + "?basis=planned").content.decode()
    assert "planned: durations in whole units of τ" in figures_in(html)["chart-timeline"]["layout"]["title"]["text"]


def test_a_point_outside_the_frontier_is_not_found(client, world):
    job = solve_now(world.ours)
    client.force_login(world.ana)
    assert client.get(reverse("planner:plan", args=[job.pk, job.num_points])).status_code == 404


def test_plans_of_an_unsolved_frontier_are_not_found(client, world):
    job, _ = planning.request_frontier(world.ours, planning.Parameters(4, 0.001, 83.64))
    client.force_login(world.ana)
    assert job.status == FrontierJob.Status.QUEUED
    assert client.get(reverse("planner:plan", args=[job.pk, 0])).status_code == 404
    assert client.get(reverse("planner:frontier_csv", args=[job.pk])).status_code == 404


def test_a_gpipe_frontier_draws_all_forwards_before_the_backwards(client, world):
    gpipe = planning.Parameters(4, 0.001, 83.64, schedule=FrontierJob.Schedule.GPIPE, mode=FrontierJob.Mode.LOWTIME)
    job = solve_now(world.ours, gpipe)
    client.force_login(world.ana)
    html = client.get(reverse("planner:plan", args=[job.pk, job.num_points - 1])).content.decode()
    bars = figures_in(html)["chart-timeline"]["data"][0]
    stage0 = [label for stage, label in zip(bars["y"], bars["text"], strict=True) if stage == "stage 0"]
    assert stage0 == ["F0", "F1", "F2", "F3", "B3", "B2", "B1", "B0"]
    assert "GPipe" in html and "lowtime-compatible" in html
