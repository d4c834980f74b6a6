"""REMOVE AT MERGE (issue 12): a stand-in for helper h2's ``wattwise_agent.plan_api.PlanApi`` and the ``plan`` and
``iteration`` events of ``wattwise_agent.plan_client.FrequencyPlanClient``, written to the interface the two
share (the issue's contract), so this example runs before they land. ``train.py`` imports it only when
``wattwise_agent.plan_api`` does not exist; delete this file, and that fallback, once it does.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from wattwise_agent.frequency_plan import RankPlan, parse_plans
from wattwise_agent.plan_client import FrequencyPlanClient


class PlanApiError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status, self.detail = status, detail


@dataclass(frozen=True)
class FetchedPlan:
    plan: RankPlan
    frontier_id: int
    point: int
    predicted_time_s: float
    predicted_energy_j: float
    baseline_time_s: float
    baseline_energy_j: float
    straggler_time_s: float | None


class PlanApi:
    def __init__(self, base_url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.base_url, self.token, self.timeout_s = base_url.rstrip("/"), token, timeout_s

    def _get(self, path: str, **params: Any) -> Any:
        query = urlencode({k: v for k, v in params.items() if v is not None})
        request = urllib.request.Request(f"{self.base_url}/api/planner{path}{'?' + query if query else ''}",
                                         headers={"Authorization": f"Bearer {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.load(response)
        except urllib.error.HTTPError as exc:
            try:
                detail = json.load(exc).get("detail", "")
            except ValueError:
                detail = exc.reason
            raise PlanApiError(exc.code, str(detail)) from None

    def rank_plan(self, frontier_id: int, rank: int, straggler_time_s: float | None = None) -> FetchedPlan:
        choice = self._get(f"/frontiers/{frontier_id}/choice", straggler_time_s=straggler_time_s)
        plan = self._get(f"/frontiers/{frontier_id}/plans/{choice['point']}", straggler_time_s=straggler_time_s)
        ranks = [{"rank": r["rank"], "frequencies": [[s["instruction"], s["freq_mhz"]] for s in r["steps"]]}
                 for r in plan["ranks"]]
        [mine] = [p for p in parse_plans({"ranks": ranks}) if p.rank == rank]
        return FetchedPlan(mine, frontier_id, choice["point"], choice["realised_time_s"], choice["realised_energy_j"],
                           choice["baseline_time_s"], choice["baseline_energy_j"], straggler_time_s)


class ShimPlanClient(FrequencyPlanClient):
    """FrequencyPlanClient with the contract's ``plan`` and ``iteration`` events (no straggler switching)."""

    def __init__(self, fetched: FetchedPlan, *, rank: int, on_event: Callable[[str, dict[str, Any]], None],
                 baseline_run: str = "", **options: Any) -> None:
        super().__init__(fetched.plan, rank=rank, **options)
        self.fetched, self._on_event, self._baseline_run = fetched, on_event, baseline_run
        self._energy = getattr(options.get("backend"), "energy_j", None)
        self._begin_j: float | None = None
        self._announced = False

    def on_step_begin(self) -> None:
        super().on_step_begin()
        if not self._announced:
            self._announced = True
            f = self.fetched
            self._on_event("plan", {
                "frontier_id": f.frontier_id, "point": f.point, "rank": self.plan.rank,
                "straggler_time_s": f.straggler_time_s or 0.0, "reason": "start",
                "predicted_time_s": f.predicted_time_s, "predicted_energy_j": f.predicted_energy_j,
                "baseline_time_s": f.baseline_time_s, "baseline_energy_j": f.baseline_energy_j,
                "dry_run": int(self.dry_run), "baseline_run": self._baseline_run,
            })
        self._begin_j = self._energy() if self._energy else None

    def on_step_end(self) -> None:
        step = self.steps
        super().on_step_end()
        fields: dict[str, Any] = {"rank": self.plan.rank, "step": step, "time_s": self.step_times_s[-1], "wait_s": 0.0}
        if self._energy is not None and self._begin_j is not None:
            fields["energy_j"] = self._energy() - self._begin_j
        self._on_event("iteration", fields)


def fetch_when_solved(api: PlanApi, frontier_id: int, rank: int, *, timeout_s: float = 300.0) -> FetchedPlan:
    """``rank_plan``, retried while the frontier is not solved yet (409)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return api.rank_plan(frontier_id, rank)
        except PlanApiError as exc:
            if exc.status != 409 or time.monotonic() > deadline:
                raise
            time.sleep(1.0)
