"""Fetch a rank's frequency plan from the app's planner API, with an API token (no file copying).

    from wattwise_agent.plan_api import PlanApi

    api = PlanApi("https://wattwise.example.org", token)          # an API token: manage.py create_api_token
    fetched = api.rank_plan(frontier_id, rank)                    # the plan that saves energy at no slowdown
    fetched = api.rank_plan(frontier_id, rank, straggler_time_s=0.61)   # the plan for a straggler's T′
    client = FrequencyPlanClient(fetched, rank=rank, on_event=tracker.event, baseline_run="loop-baseline")

Two requests, both ``Authorization: Bearer TOKEN``: ``GET /api/planner/frontiers/{id}/choice`` (which point
of the frontier to run, with its predicted figures) and ``GET /api/planner/frontiers/{id}/plans/{point}``
(every stage's clocks in program order; this rank's are kept). The predicted figures are the planner's
re-evaluation of the plan at the profiled clocks (``realised_*`` in the API), for one pipeline iteration;
with a straggler the energy includes blocking until ``T′``.

A frontier still queued or solving answers 409: ``rank_plan`` polls the frontier (logging its progress)
and asks again, for at most ``wait_s``. Everything else the app or the network says raises
:class:`PlanApiError`, with the HTTP status (None when the app could not be reached) and the app's words.
The standard library's ``http.client`` does the HTTP, with TLS through the system's CA certificates or
``ca_bundle`` (default ``$WATTWISE_CA_BUNDLE``), as :class:`~wattwise_agent.transport.HttpTransport` does.
"""

from __future__ import annotations

import http.client
import json
import logging
import math
import os
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit

from wattwise_agent import __version__
from wattwise_agent.frequency_plan import PlanError, RankPlan, parse_plans

log = logging.getLogger(__name__)

API_PREFIX = "/api/planner"
MAX_ANSWER_BYTES = 64 * 1024 * 1024
NOT_SOLVED = 409


class PlanApiError(RuntimeError):
    """The plan could not be fetched: ``status`` (the HTTP status; None: no answer) and ``detail`` (the app's)."""

    def __init__(self, status: int | None, detail: str, *, url: str = "") -> None:
        where = f" ({url})" if url else ""
        prefix = f"{status}: " if status is not None else ""
        super().__init__(f"{prefix}{detail}{where}")
        self.status = status
        self.detail = detail
        self.url = url


@dataclass(frozen=True)
class FetchedPlan:
    """One rank's plan as the app chose it, with the planner's prediction for one pipeline iteration."""

    plan: RankPlan
    frontier_id: int
    point: int
    predicted_time_s: float  # the plan's iteration time (without waiting for a straggler)
    predicted_energy_j: float  # the whole pipeline's energy per iteration (blocking until T′ with a straggler)
    baseline_time_s: float  # every computation at the highest clock, same frontier
    baseline_energy_j: float
    straggler_time_s: float | None  # the T′ asked for; None: no straggler
    meets_time: bool = True  # the plan finishes within T′ (the fastest plan is given when none does)

    @property
    def rank(self) -> int:
        return self.plan.rank

    @property
    def expected_iteration_s(self) -> float:
        """How long an iteration should take with this plan: its own time, or T′ when the straggler is slower."""
        return max(self.predicted_time_s, self.straggler_time_s or 0.0)

    @property
    def predicted_saving_fraction(self) -> float:
        return 1.0 - self.predicted_energy_j / self.baseline_energy_j


class PlanApi:
    """The planner API of the app at ``base_url``, as the owner of API ``token``; see the module text.

    ``timeout_s``: per request; ``wait_s``: how long ``rank_plan`` waits for a frontier being solved (0: not
    at all); ``poll_s``: how often it asks meanwhile. ``sleep``: how it waits (a test passes its own).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        ca_bundle: str | None = None,
        timeout_s: float = 30.0,
        wait_s: float = 600.0,
        poll_s: float = 2.0,
        sleep: Callable[[float], None] = time.sleep,
        timer: Callable[[], float] = time.monotonic,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http:// or https:// URL: {base_url!r} (e.g. https://wattwise.example.org)")
        if parts.username or parts.password or parts.query or parts.fragment:
            raise ValueError(f"the app's URL takes no user, password, query or fragment: {base_url!r}")
        if not token or not token.strip():
            raise ValueError("no API token: create one with `manage.py create_api_token USER` (or on the tokens page)")
        if not (timeout_s > 0 and wait_s >= 0 and poll_s > 0):
            raise ValueError("timeout_s and poll_s must be positive, wait_s 0 or more")
        self.base_url = base_url.rstrip("/")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/") + API_PREFIX
        self._context: ssl.SSLContext | None = None
        if self._https:
            bundle = ca_bundle or os.environ.get("WATTWISE_CA_BUNDLE") or None
            try:
                self._context = ssl.create_default_context(cafile=bundle)
            except (OSError, ssl.SSLError) as exc:
                raise ValueError(f"cannot use the CA bundle {bundle!r} (WATTWISE_CA_BUNDLE): {exc}") from None
        self._headers = {"Authorization": f"Bearer {token.strip()}", "Accept": "application/json",
                         "User-Agent": f"wattwise-agent/{__version__}"}
        self._timeout_s = timeout_s
        self.wait_s, self.poll_s = wait_s, poll_s
        self._sleep, self._timer = sleep, timer

    def __repr__(self) -> str:
        return f"PlanApi({self.base_url!r})"

    # The one call the plan client needs.

    def rank_plan(self, frontier_id: int, rank: int, straggler_time_s: float | None = None) -> FetchedPlan:
        """The plan of pipeline ``rank`` the app chooses on frontier ``frontier_id`` (for a straggler's
        iteration time ``straggler_time_s``, T′ in seconds; None: no straggler)."""
        if isinstance(frontier_id, bool) or not isinstance(frontier_id, int) or frontier_id < 1:
            raise ValueError(f"frontier_id must be a frontier's id (a whole number, 1 or more), got {frontier_id!r}")
        if isinstance(rank, bool) or not isinstance(rank, int) or rank < 0:
            raise ValueError(f"rank must be a pipeline rank (0 or more), got {rank!r}")
        if straggler_time_s is not None and not (math.isfinite(straggler_time_s) and straggler_time_s > 0):
            raise ValueError(f"straggler_time_s must be a time in seconds above 0, got {straggler_time_s!r}")
        query = {} if straggler_time_s is None else {"straggler_time_s": repr(float(straggler_time_s))}
        choice = self._solved(f"/frontiers/{frontier_id}/choice", query, frontier_id)
        point = _field(choice, "point", int)
        plan = self._solved(f"/frontiers/{frontier_id}/plans/{point}", query, frontier_id)
        ranks = plan.get("ranks")
        if not isinstance(ranks, list):
            raise PlanApiError(200, "the plan has no ranks list", url=self._url(f"/frontiers/{frontier_id}/plans/{point}"))
        chosen = next((r for r in ranks if isinstance(r, Mapping) and r.get("rank") == rank), None)
        if chosen is None:
            stages = len(ranks)
            raise PlanApiError(404, f"frontier {frontier_id} plans {stages} pipeline stage(s) (ranks 0–{stages - 1}): "
                                    f"it has no rank {rank}")
        rank_plan = _rank_plan(chosen, rank)
        fetched = FetchedPlan(
            plan=rank_plan, frontier_id=frontier_id, point=point,
            predicted_time_s=_field(choice, "realised_time_s", float),
            predicted_energy_j=_field(choice, "realised_energy_j", float),
            baseline_time_s=_field(choice, "baseline_time_s", float),
            baseline_energy_j=_field(choice, "baseline_energy_j", float),
            straggler_time_s=None if straggler_time_s is None else float(straggler_time_s),
            meets_time=bool(choice.get("meets_time", True)),
        )
        log.info("frontier %d%s: plan %d for rank %d, predicted %.4g s and %.4g J per iteration (%.1f %% less "
                 "energy than all-max)", frontier_id,
                 "" if straggler_time_s is None else f" (straggler T′ = {straggler_time_s:.4g} s)", point, rank,
                 fetched.predicted_time_s, fetched.predicted_energy_j, 100 * fetched.predicted_saving_fraction)
        return fetched

    # HTTP.

    def _solved(self, path: str, query: Mapping[str, str], frontier_id: int) -> dict[str, Any]:
        """GET ``path``, waiting (at most ``wait_s``) while the frontier is not solved yet."""
        started_s = self._timer()
        while True:
            status, answer = self._get(path, query)
            if status == 200:
                if not isinstance(answer, dict):
                    raise PlanApiError(status, "expected a JSON object", url=self._url(path))
                return answer
            detail = _detail(answer)
            if status != NOT_SOLVED:
                raise PlanApiError(status, _explain(status, detail, frontier_id), url=self._url(path, query))
            frontier = self._frontier(frontier_id)
            if frontier.get("status") == "failed":
                raise PlanApiError(status, f"frontier {frontier_id} failed to solve: {frontier.get('error') or detail}",
                                   url=self._url(path, query))
            waited_s = self._timer() - started_s
            if waited_s >= self.wait_s:
                raise PlanApiError(status, f"{detail}; gave up after waiting {waited_s:.0f} s (wait_s)",
                                   url=self._url(path, query))
            log.info("frontier %d is %s (%s of %s solved); asking again in %.0f s (waited %.0f of %.0f s)",
                     frontier_id, frontier.get("status", "not solved"), frontier.get("progress_done", "?"),
                     frontier.get("progress_total", "?"), self.poll_s, waited_s, self.wait_s)
            self._sleep(min(self.poll_s, max(self.wait_s - waited_s, 0.0)))

    def _frontier(self, frontier_id: int) -> dict[str, Any]:
        status, answer = self._get(f"/frontiers/{frontier_id}", {})
        if status != 200 or not isinstance(answer, dict):
            raise PlanApiError(status, _explain(status, _detail(answer), frontier_id),
                               url=self._url(f"/frontiers/{frontier_id}"))
        return answer

    def _url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return f"{self.base_url}{API_PREFIX}{path}" + (f"?{urlencode(query)}" if query else "")

    def _get(self, path: str, query: Mapping[str, str]) -> tuple[int, Any]:
        target = self._prefix + path + (f"?{urlencode(query)}" if query else "")
        connection: http.client.HTTPConnection
        if self._https:
            connection = http.client.HTTPSConnection(self._host, self._port, timeout=self._timeout_s,
                                                     context=self._context)
        else:
            connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout_s)
        try:
            connection.request("GET", target, headers=self._headers)
            response = connection.getresponse()
            data = response.read(MAX_ANSWER_BYTES + 1)
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            raise PlanApiError(None, f"cannot reach the app: {exc}", url=self._url(path, query)) from exc
        finally:
            connection.close()
        if len(data) > MAX_ANSWER_BYTES:
            raise PlanApiError(status, f"the answer is over {MAX_ANSWER_BYTES} bytes", url=self._url(path, query))
        try:
            return status, json.loads(data) if data else None
        except ValueError:
            if status == 200:
                raise PlanApiError(status, "the answer is not JSON (is this the Wattwise app's URL?)",
                                   url=self._url(path, query)) from None
            return status, data[:200].decode("utf-8", "replace")


def _detail(answer: Any) -> str:
    if isinstance(answer, dict) and isinstance(answer.get("detail"), str):
        return answer["detail"]
    return str(answer or "no detail")


def _explain(status: int | None, detail: str, frontier_id: int) -> str:
    if status == 401:
        return f"the app refused the API token ({detail}): create one with `manage.py create_api_token USER`"
    if status == 403:
        return f"the token may not read frontier {frontier_id}: {detail}"
    if status == 404:
        return f"{detail} (frontier {frontier_id} does not exist, or is not in the token owner's projects)"
    return detail


def _field(answer: Mapping[str, Any], name: str, kind: type) -> Any:
    value = answer.get(name)
    if kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
        raise PlanApiError(200, f"{name}: expected a whole number in the app's answer, got {value!r}")
    if kind is float and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        raise PlanApiError(200, f"{name}: expected a number in the app's answer, got {value!r}")
    return kind(value)


def _rank_plan(rank_row: Mapping[str, Any], rank: int) -> RankPlan:
    """The API's ``steps`` (order, instruction, microbatch, freq_mhz) as a RankPlan, in program order."""
    steps = rank_row.get("steps")
    if not isinstance(steps, list):
        raise PlanApiError(200, f"ranks[{rank}].steps: expected a list")
    try:
        ordered = sorted(steps, key=lambda s: s["order"])
        plans = parse_plans({"rank": rank, "frequencies": [[s["instruction"], s["freq_mhz"]] for s in ordered]})
    except (KeyError, TypeError) as exc:
        raise PlanApiError(200, f"ranks[{rank}].steps: unexpected shape ({exc})") from None
    except PlanError as exc:
        raise PlanApiError(200, f"ranks[{rank}]: {exc}") from None
    return plans[0]
