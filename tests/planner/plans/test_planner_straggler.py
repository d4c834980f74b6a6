"""The straggler box: enter T′ or take it from a run's measured iteration time, and see the chosen plan
and what it saves."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run
from planner import perseus
from planner.plans import iterations, planning
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register
from tests.planner.plans.figures import figures_in

pytestmark = pytest.mark.django_db


def run_with_steps(node_name: str, project: str, run: str, step_ms_by_node: dict[str, list[int]]) -> Run:
    """Stream one batch per node carrying ``step_end`` markers at the given times (ms after T0)."""
    for i, (node, ends) in enumerate(step_ms_by_node.items()):
        registered = register(f"{node_name}-{node}", project)
        t_ms = [T0_MS + 100 * k for k in range(0, max(ends) // 100 + 2)]
        events = [{"t_ms": T0_MS + end, "kind": "step_end", "step": step} for step, end in enumerate(ends)]
        payload = batch_payload([gpu_entry(f"GPU-{i}", t_ms, [1000 * k for k in range(len(t_ms))])], run=run,
                                stream=f"s-{node}", events=events)
        assert ingest.ingest_batch(envelope(registered, payload)).status == "stored"
    return Run.objects.get(name=run)


def test_entering_a_straggler_time_chooses_the_plan_and_shows_its_saving(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    t = round(1.2 * 2.8365107650756807, 4)  # the paper's 1.2 × the all-max iteration time
    response = client.get(gpt3_job.get_absolute_url(), {"straggler_s": t})
    choice = response.context["straggler"]["choice"]
    expected = perseus.choose_for_straggler(planning.load(gpt3_job).frontier, planning.load(gpt3_job).profile, t)
    assert choice.index == expected.index and choice.meets_time
    assert choice.saving_fraction == pytest.approx(0.2725, abs=0.0005)  # docs/planner.md: 27.25 %
    html = response.content.decode()
    assert f"plan {choice.index}</b>" in html and "saves 27.2 %" in html
    assert f'{reverse("planner:plan", args=[gpt3_job.pk, choice.index])}?straggler={t}' in html
    # The chart marks T′ and the chosen plan.
    figure = figures_in(html)["chart-frontier"]
    assert "chosen for T′ (realised)" in [trace["name"] for trace in figure["data"]]
    assert f"T′ = {t:.4g} s" in [a["text"] for a in figure["layout"]["annotations"]]


def test_the_plan_page_with_a_straggler_time_charges_both_until_then(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    solved = planning.load(gpt3_job)
    choice = perseus.choose_for_straggler(solved.frontier, solved.profile, 3.4)
    response = client.get(reverse("planner:plan", args=[gpt3_job.pk, choice.index]), {"straggler": "3.4"})
    figures = response.context["figures"]
    assert figures.saving_j == pytest.approx(choice.saving_j)
    assert figures.saving_fraction == pytest.approx(choice.saving_fraction)
    assert "Saves at T′ = 3.4000 s" in response.content.decode()


def test_a_straggler_faster_than_all_max_is_an_error_naming_the_limit(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url(), {"straggler_s": "2.5"})
    assert response.context["straggler"]["choice"] is None
    html = response.content.decode()
    assert 'id="straggler-error"' in html and "shorter than the all-maximum-frequency iteration time (2.83651 s)" in html


def test_no_straggler_means_the_fastest_plan_removing_intrinsic_bloat(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url())
    intrinsic = response.context["intrinsic"]
    assert intrinsic.index == gpt3_job.num_points - 1
    assert intrinsic.saving_pct == pytest.approx(16.3, abs=0.05)
    # At τ = 1 ms the fastest plan realises a little slower than all-max; the page says so.
    assert not intrinsic.meets_time and 'id="coarse-tau"' in response.content.decode()


def test_taking_t_from_a_runs_measured_iteration_time(client, gpt3_job):
    # Node a steps every 3.0 s, node b every 3.4 s (with one 30 s pause for a checkpoint): b is the straggler.
    a = [3000 * k for k in range(8)]
    b = [3400 * k for k in range(4)] + [3400 * 3 + 30_000 + 3400 * k for k in range(1, 5)]
    run = run_with_steps("gpu", "vision", "gpt3-pretrain", {"a": a, "b": b})
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url(), {"run": run.pk})
    measured = response.context["straggler"]["measured"]
    assert {n.node: n.median_s for n in measured.nodes} == {"gpu-a": 3.0, "gpu-b": 3.4}
    assert measured.straggler.node == "gpu-b" and measured.iteration_time_s == 3.4
    assert response.context["straggler"]["choice"].straggler_time_s == 3.4
    html = response.content.decode()
    assert 'id="measured"' in html and "the slowest, gpu-b, sets T′" in html


def test_runs_of_other_projects_are_not_offered(client, gpt3_job):
    theirs = run_with_steps("far", "speech", "their-run", {"a": [0, 3000, 6000]})
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url())
    assert "their-run" not in response.content.decode()
    response = client.get(gpt3_job.get_absolute_url(), {"run": theirs.pk})
    assert response.context["straggler"]["choice"] is None
    assert "Select a valid choice" in response.content.decode()


def test_a_node_reporting_each_step_from_several_ranks_counts_its_slowest(db):
    run = run_with_steps("gpu", "vision", "multi", {"a": [0, 0, 0]})  # placeholder run to attach events to
    from dashboard.telemetry.models import Node, RunEvent

    node = Node.objects.get(name="gpu-a")
    RunEvent.objects.filter(run=run).delete()
    for step in range(5):
        for rank_delay in (0, 40, 25):  # three ranks end each step within 40 ms
            RunEvent.objects.create(run=run, node=node, t_ms=T0_MS + 2000 * step + rank_delay, kind="step_end",
                                    data={"step": step})
    assert iterations.measure(run).iteration_time_s == 2.0


def test_a_run_without_step_markers_cannot_give_a_time(db):
    run = run_with_steps("gpu", "vision", "no-steps", {"a": [0]})
    with pytest.raises(iterations.NoSteps, match="no consecutive step_end markers"):
        iterations.measure(run)


def steps_every(seconds: float, count: int = 5) -> list[int]:
    return [round(1000 * seconds * k) for k in range(count)]


def test_a_run_stepping_faster_than_the_frontier_says_why_and_offers_the_runs_that_fit(client, gpt3_job):
    fast = run_with_steps("fast", "vision", "demo-llama", {"a": steps_every(1.0)})
    run_with_steps("gpu", "vision", "gpt3-pretrain", {"a": steps_every(3.0)})
    run_with_steps("slow", "vision", "long-steps", {"a": steps_every(100.0)})
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url(), {"run": fast.pk})
    assert response.context["straggler"]["choice"] is None
    html = response.content.decode()
    assert "No plan for that run." in html
    assert "Its step time, 1.000 s,\n      is shorter than this frontier's fastest iteration, 2.837 s" in html
    offered = html[html.index('id="runs-inside"'):].split("</span>")[0]
    assert "gpt3-pretrain</a>\n        (3.000 s)" in offered
    assert "demo-llama" not in offered and "long-steps" not in offered


def test_a_run_stepping_slower_than_the_frontier_gets_the_cheapest_plan_and_is_told_so(client, gpt3_job):
    slow = run_with_steps("slow", "vision", "long-steps", {"a": steps_every(100.0)})
    run_with_steps("gpu", "vision", "gpt3-pretrain", {"a": steps_every(3.0)})
    client.force_login(gpt3_job.profile.project.members.get())
    response = client.get(gpt3_job.get_absolute_url(), {"run": slow.pk})
    solved = planning.load(gpt3_job)
    choice = response.context["straggler"]["choice"]
    assert choice == perseus.choose_for_straggler(solved.frontier, solved.profile, 100.0)
    html = response.content.decode()
    slowest = f"{np.max(solved.realised[0]):.3f}"
    assert f"Run long-steps's step time, 100.000 s, is longer than this frontier's\n      slowest plan, {slowest} s" in html
    assert 'id="runs-inside"' in html and "gpt3-pretrain</a>" in html


def test_the_straggler_box_names_the_iteration_times_the_frontier_covers(client, gpt3_job):
    client.force_login(gpt3_job.profile.project.members.get())
    html = client.get(gpt3_job.get_absolute_url()).content.decode()
    slowest = np.max(planning.load(gpt3_job).realised[0])
    assert f'<span id="straggler-span">2.837–{slowest:.3f} s</span>' in html
