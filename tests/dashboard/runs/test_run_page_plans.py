"""The run page marks when each frequency plan was in force, from the plan client's ``plan`` events."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.urls import reverse

from dashboard.runs.plan_intervals import merge
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Run
from tests.dashboard.runs.test_run_pages import figures_in
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, member, register

pytestmark = pytest.mark.django_db

PLAN = {"frontier_id": 7, "predicted_time_s": 0.63, "predicted_energy_j": 262.6, "baseline_time_s": 0.63,
        "baseline_energy_j": 264.1, "dry_run": 0, "baseline_run": "loop-baseline"}


def plan_event(t_ms: int, rank: int, point: int, reason: str, straggler_time_s: float = 0.0) -> dict[str, Any]:
    return {"t_ms": t_ms, "kind": "plan", **PLAN, "rank": rank, "point": point, "reason": reason,
            "straggler_time_s": straggler_time_s}


@pytest.fixture
def run(client: Any) -> Run:
    """Two ranks of a pipeline on one node: plan 296 at the start, plan 174 for a straggler 1.2 s in."""
    node = register("node-a", "vision")
    events = [plan_event(T0_MS, 0, 296, "start"), plan_event(T0_MS + 5, 1, 296, "start"),
              {"t_ms": T0_MS + 600, "kind": "iteration", "rank": 0, "step": 0, "time_s": 0.6, "wait_s": 0.0},
              plan_event(T0_MS + 1200, 0, 174, "straggler", 0.7568), plan_event(T0_MS + 1250, 1, 174, "straggler", 0.7568)]
    for seq in range(3):
        t_ms = [T0_MS + seq * 1000 + 100 * i for i in range(10)]
        energy = [1_000_000 + seq * 300_000 + 30_000 * i for i in range(10)]
        prev = (t_ms[0] - 100, energy[0] - 30_000) if seq else None
        window = [e for e in events if t_ms[0] <= e["t_ms"] <= t_ms[-1] + 99]
        payload = batch_payload([gpu_entry("GPU-1", t_ms, energy, prev=prev)], run="planned", seq=seq, events=window)
        assert ingest.ingest_batch(envelope(node, payload)).status == "stored"
    client.force_login(member("ana", "vision"))
    return Run.objects.get()


def test_each_plan_in_force_is_a_band_on_the_power_chart_and_a_row_of_the_plans_table(client: Any, run: Run) -> None:
    html = client.get(reverse("run", args=[run.pk])).content.decode()
    layout = figures_in(html)["chart-power"]["layout"]
    bands = [s for s in layout["shapes"] if s["type"] == "rect"]
    assert [(b["x0"], b["x1"]) for b in bands] == [(T0_MS, T0_MS + 1200), (T0_MS + 1200, T0_MS + 2900)]
    assert [a["text"] for a in layout["annotations"]] == ["plan 296 (start)", "plan 174 (straggler, T′ 0.757 s)"]

    table = html[html.index('id="plans-table"'):]
    table = table[:table.index("</table>")]
    rows = re.findall(r'<tr data-reason="(\w+)">(.*?)</tr>', table, re.S)
    assert [reason for reason, _ in rows] == ["start", "straggler"]
    cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", rows[1][1], re.S)]
    assert cells == ["2026-01-01T00:00:01", "end of run", "frontier 7", "174", "straggler", "757 ms", "630 ms",
                     "263 J", "0, 1", "applied"]
    assert reverse("planner:frontier", args=[7]) in rows[0][1]


def test_a_run_without_plan_events_has_no_plans_table_or_bands(client: Any) -> None:
    node = register("node-a", "vision")
    payload = batch_payload([gpu_entry("GPU-1", [T0_MS + 100 * i for i in range(10)],
                                       [1_000_000 + 30_000 * i for i in range(10)])], run="plain")
    assert ingest.ingest_batch(envelope(node, payload)).status == "stored"
    client.force_login(member("ana", "vision"))
    html = client.get(reverse("run", args=[Run.objects.get().pk])).content.decode()
    assert 'id="plans-table"' not in html and "shapes" not in figures_in(html)["chart-power"]["layout"]


def test_ranks_switching_at_different_moments_make_one_interval_per_plan_and_odd_fields_are_tolerated() -> None:
    intervals = merge([(0, {"rank": 0, "point": 5, "reason": "start", "frontier_id": 1}),
                       (10, {"rank": 1, "point": 5, "reason": "start", "frontier_id": 1}),
                       (50, {"rank": 1, "point": 2, "reason": "straggler", "frontier_id": 1, "straggler_time_s": 1.5}),
                       (60, {"rank": 0, "point": 2, "reason": "straggler", "frontier_id": 1, "straggler_time_s": 1.5}),
                       (90, {"rank": "x", "reason": 3})])
    assert [(i.from_ms, i.to_ms, i.point, i.ranks) for i in intervals] == [(0, 50, 5, [0, 1]), (50, 90, 2, [0, 1]),
                                                                         (90, None, None, [])]
    assert intervals[2].label == "plan from a file ()"
