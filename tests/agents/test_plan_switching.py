"""The plan client in the loop: plans fetched from the app, its events, and switching plans for a straggler
on emulated GPUs (a one-stage pipeline on virtual time, against the real app)."""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest

from tests.agents.emulation_support import VirtualTime
from tests.agents.plan_loop_support import ORDER, emulated_stage, solved_frontier, train
from tests.agents.support import TOKEN, opened
from wattwise_agent.clock_guard import ALLOW_CLOCK_CHANGES_ENV
from wattwise_agent.plan_api import PlanApi
from wattwise_agent.plan_client import FrequencyPlanClient
from wattwise_agent.plan_switch import StragglerSwitcher
from wattwise_agent.torch_hooks import Tracker
from wattwise_agent.transport import MemoryTransport

pytestmark = pytest.mark.app

ALLOWED = {ALLOW_CLOCK_CHANGES_ENV: "1"}
STEPS, STRAGGLER_FROM = 12, 3


@pytest.fixture
def api(live_server: Any, transactional_db: Any, settings: Any) -> tuple[PlanApi, int]:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    planned, _ = solved_frontier()
    return PlanApi(live_server.url, planned.token), planned.frontier_id


def client_for(time: VirtualTime, fetched: Any, gpu: Any, **options: Any) -> FrequencyPlanClient:
    return FrequencyPlanClient(fetched, rank=0, backend=gpu, threaded=False, synchronize=lambda: None,
                               timer=time.timer, handle_sigterm=False, **options)


def run_with_straggler(api: tuple[PlanApi, int], straggler_factor: float, *, switch: bool,
                       **options: Any) -> tuple[FrequencyPlanClient, float, list[tuple[str, dict[str, Any]]]]:
    """The run's client, its emulated GPU energy over the iterations, and the events it emitted."""
    plans, frontier_id = api
    fetch = partial(plans.rank_plan, frontier_id, 0)
    fetched = fetch(None)
    time = VirtualTime()
    gpu = emulated_stage(time)
    events: list[tuple[str, dict[str, Any]]] = []
    switcher = StragglerSwitcher(fetch) if switch else None
    with client_for(time, fetched, gpu, switcher=switcher, on_event=lambda k, f: events.append((k, f)),
                    **options) as client:
        start_j = gpu.energy_j()
        train(client, STEPS, gpu, STRAGGLER_FROM, straggler_factor * fetched.baseline_time_s)
        energy_j = gpu.energy_j() - start_j
    assert gpu.locked_mhz is None  # reset when the client closed
    return client, energy_j, events


def test_a_straggler_switches_the_plan_within_two_iterations_and_saves_energy_against_the_original_plan(
        api: tuple[PlanApi, int]) -> None:
    switched, switched_j, events = run_with_straggler(api, 1.3, switch=True, allow_clock_changes=True,
                                                      environ=ALLOWED)
    original, original_j, _ = run_with_straggler(api, 1.3, switch=False, allow_clock_changes=True, environ=ALLOWED)

    plans = [fields for kind, fields in events if kind == "plan"]
    assert [p["reason"] for p in plans] == ["start", "straggler"]
    in_force = [step for step, _, _ in switched.plan_history]
    assert in_force[0] == 0 and STRAGGLER_FROM < in_force[1] <= STRAGGLER_FROM + 2
    straggler_s = 1.3 * plans[0]["baseline_time_s"]
    # T′ as measured, rounded down to 0.5 % of all-max: every rank of a pipeline asks for the same plan.
    assert straggler_s - 0.005 * plans[0]["baseline_time_s"] < plans[1]["straggler_time_s"] <= straggler_s
    assert plans[1]["point"] < plans[0]["point"] and plans[1]["predicted_time_s"] <= straggler_s
    # Every iteration with the straggler lasts T′ either way; the switched run spends less energy in it.
    iterations = [fields for kind, fields in events if kind == "iteration"]
    assert [i["step"] for i in iterations] == list(range(STEPS))
    for i in iterations[STRAGGLER_FROM:]:
        assert i["time_s"] == pytest.approx(straggler_s, rel=1e-6)
    assert list(original.step_times_s) == pytest.approx(list(switched.step_times_s), rel=1e-6)
    assert switched_j < original_j
    # What the emulated counters measured once the switch was in force is what the planner predicted.
    after = [i["energy_j"] for i in iterations[in_force[1]:]]
    assert sum(after) / len(after) == pytest.approx(plans[1]["predicted_energy_j"], rel=1e-3)
    assert iterations[-1]["wait_s"] < iterations[STRAGGLER_FROM]["wait_s"]  # the slower plan fills the wait


def test_without_both_opt_ins_the_switch_happens_but_no_clock_changes(api: tuple[PlanApi, int]) -> None:
    client, _, events = run_with_straggler(api, 1.3, switch=True, allow_clock_changes=False, environ=ALLOWED)
    assert [f["reason"] for k, f in events if k == "plan"] == ["start", "straggler"]
    assert all(f["dry_run"] == 1 for k, f in events if k == "plan")
    assert client.applied_mhz == [] and client.requested_mhz  # what it would have set, and nothing set


def test_the_plan_for_the_straggler_goes_back_when_told_or_when_the_iteration_shortens(api: tuple[PlanApi, int]) -> None:
    plans, frontier_id = api
    fetch = partial(plans.rank_plan, frontier_id, 0)
    time = VirtualTime()
    gpu = emulated_stage(time)
    events: list[tuple[str, dict[str, Any]]] = []
    switcher = StragglerSwitcher(fetch)
    fetched = fetch(None)
    with client_for(time, fetched, gpu, switcher=switcher, on_event=lambda k, f: events.append((k, f)),
                    allow_clock_changes=True, environ=ALLOWED) as client:
        train(client, 4, gpu, 1, 1.2 * fetched.baseline_time_s)  # the plan for it fills T′
        gpu.straggler_iteration_s = None
        train(client, 3, gpu)  # the iteration hardly shortens: undetected ...
        assert [f["reason"] for k, f in events if k == "plan"] == ["start", "straggler"]
        switcher.straggler_gone()  # ... until someone says so
        train(client, 3, gpu)
        # A straggler far slower than the slowest plan leaves slack that shows when it goes.
        train(client, 4, gpu, 0, 4.0 * fetched.baseline_time_s)
        gpu.straggler_iteration_s = None
        train(client, 4, gpu)
    assert [f["reason"] for k, f in events if k == "plan"] == ["start", "straggler", "recovered", "straggler",
                                                              "recovered"]
    assert [f["straggler_time_s"] for k, f in events if k == "plan"][2::2] == [0.0, 0.0]


def test_plan_and_iteration_events_reach_the_runs_stream_and_a_baseline_run_reports_iterations_only(
        api: tuple[PlanApi, int]) -> None:
    plans, frontier_id = api
    fetched = plans.rank_plan(frontier_id, 0)
    streams = {}
    for name, plan in (("loop-baseline", None), ("loop-planned", fetched)):
        time = VirtualTime()
        gpu = emulated_stage(time)
        transport = MemoryTransport()
        with Tracker(name, backend=gpu, transport=transport, token=TOKEN, node="n") as tracker, \
                client_for(time, plan, gpu, on_event=tracker, baseline_run="loop-baseline") as client:
            train(client, 3)
        assert client.applied_mhz == [] and gpu.changes == []  # no opt-in: nothing changed
        streams[name] = [e for env in transport.envelopes if env["kind"] == "batch"
                         for e in opened(env).get("events", [])]
    baseline, planned = streams["loop-baseline"], streams["loop-planned"]
    assert [e["kind"] for e in baseline] == ["iteration"] * 3
    assert {k for e in baseline for k in e} == {"t_ms", "kind", "rank", "step", "time_s", "energy_j", "wait_s"}
    assert [e["kind"] for e in planned] == ["plan"] + ["iteration"] * 3
    plan = planned[0]
    assert {k: plan[k] for k in ("frontier_id", "point", "rank", "straggler_time_s", "reason", "dry_run",
                                 "baseline_run")} == {"frontier_id": frontier_id, "point": fetched.point, "rank": 0,
                                                      "straggler_time_s": 0.0, "reason": "start", "dry_run": 1,
                                                      "baseline_run": "loop-baseline"}
    assert plan["predicted_energy_j"] == fetched.predicted_energy_j
    assert plan["baseline_time_s"] == fetched.baseline_time_s and plan["baseline_energy_j"] == fetched.baseline_energy_j
    # An all-max iteration of the one-stage pipeline: the baseline the planner predicts, on the counters.
    assert baseline[1]["energy_j"] == pytest.approx(fetched.baseline_energy_j, rel=1e-3)
    assert baseline[1]["time_s"] == pytest.approx(fetched.baseline_time_s, rel=1e-6)
    assert len(ORDER) == 8
