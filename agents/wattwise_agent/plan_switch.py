"""Switch to the plan for a straggler when the measured iteration time says one is slowing the pipeline.

    from functools import partial
    from wattwise_agent.plan_switch import StragglerSwitcher

    api = PlanApi(url, token)
    fetch = partial(api.rank_plan, frontier_id, rank)       # fetch(straggler_time_s) -> FetchedPlan
    client = FrequencyPlanClient(fetch(None), rank=rank, on_event=tracker, switcher=StragglerSwitcher(fetch))

The Perseus straggler scenario: a peer pipeline (another data-parallel replica) is slower, so every
iteration waits for it at the gradient sync; running this pipeline's computations at lower clocks costs
no time then, and saves energy. After every iteration the plan client hands the switcher the iteration's
measured time (waiting included). When it exceeds what the plan in force expects (its predicted time, or
the straggler time ``T′`` it was fetched for, whichever is longer) by more than ``tolerance`` for
``patience`` iterations running, the switcher fetches, on its own thread, the plan for ``T′`` = that
measured time, and the client puts it in force at the start of the next iteration it is ready for: the
iteration after the one measured, or at the latest the one after that (the client then waits for the
fetch, at most ``fetch_timeout_s``). So a straggler that appears in iteration ``n`` is planned for from
iteration ``n + 1`` or ``n + 2``; the client emits a ``plan`` event with reason ``"straggler"``.

What it can and cannot see (it has only iteration times):

* a straggler appearing, or getting slower: the iteration gets longer than expected (detected);
* the straggler getting faster, or going away, **while the plan in force leaves visible slack**: the
  iteration gets shorter than expected by more than ``tolerance`` (detected; it fetches the plan with
  no straggler, reason ``"recovered"``, and if a slower straggler remains it is detected again next);
* the straggler going away **while the plan for it fills ``T′``** (the usual case: the cheapest plan
  finishing within ``T′`` takes nearly ``T′``): the iteration time hardly changes, only the waiting at
  the sync does, and that cannot be told from noise by timing alone. Whoever knows (the job's
  controller, a health check) calls :meth:`StragglerSwitcher.straggler_gone`; until then the slower
  plan keeps running, still saving energy, at the cost of the iteration time the straggler set;
* this pipeline itself being slow (its own GPU throttled): the iteration is longer too, and the plan
  for a straggler slows the other stages to match, which is what Perseus would choose as well.

Every rank runs its own switcher and measures nearly the same time (the wait makes the iterations equal),
so each fetches the plan of one frontier point only if they ask for the same ``T′``: the measured time is
rounded down to a multiple of ``resolution`` × the all-max iteration time (0.5 % by default) before it is
asked for. Ranks whose measurements straddle a multiple can still get neighbouring points for an
iteration or two; rounding down never gives a plan slower than the straggler.

Hysteresis: the iteration in which a new plan came into force is not judged (its clock changes may
land mid-iteration), a switch needs ``patience`` iterations past the tolerance, and a fetch that failed
is not retried for ``cooldown_steps`` iterations (the failure is logged; the current plan stays).
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from wattwise_agent.plan_api import FetchedPlan

log = logging.getLogger(__name__)

STRAGGLER = "straggler"
RECOVERED = "recovered"
START = "start"

Fetch = Callable[[Optional[float]], FetchedPlan]  # Optional: the agent supports Python 3.9 (evaluated at import)


@dataclass(frozen=True)
class Switch:
    """A plan to put in force, and why."""

    fetched: FetchedPlan
    reason: str  # "straggler" or "recovered"
    measured_at_step: int  # the iteration whose time asked for it


class StragglerSwitcher:
    """Decides when to fetch another plan, and fetches it on a helper thread; see the module text."""

    def __init__(
        self,
        fetch: Fetch,
        *,
        tolerance: float = 0.05,
        patience: int = 1,
        cooldown_steps: int = 10,
        fetch_timeout_s: float = 120.0,
        resolution: float = 0.005,
    ) -> None:
        if not (math.isfinite(tolerance) and 0 < tolerance < 1):
            raise ValueError(f"tolerance must be a fraction between 0 and 1, got {tolerance!r}")
        if patience < 1 or cooldown_steps < 0 or not fetch_timeout_s > 0:
            raise ValueError("patience must be 1 or more, cooldown_steps 0 or more, fetch_timeout_s above 0")
        self._fetch = fetch
        self.tolerance, self.patience, self.cooldown_steps = tolerance, patience, cooldown_steps
        self.fetch_timeout_s = fetch_timeout_s
        if not (math.isfinite(resolution) and 0 <= resolution < tolerance):
            raise ValueError(f"resolution must be a fraction from 0 up to the tolerance, got {resolution!r}")
        self.resolution = resolution
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._in_flight: tuple[int, str] | None = None  # (step measured, reason) of the fetch running
        self._ready: Switch | None = None
        self._current: FetchedPlan | None = None
        self._over = self._under = 0
        self._quiet_until_step = -1
        self._gone_asked = False
        self.switches: list[Switch] = []  # every switch handed to the client, in order
        self.errors: list[BaseException] = []  # fetches that failed

    # The plan client's side.

    def observe(self, step: int, time_s: float, current: FetchedPlan | None) -> None:
        """Iteration ``step`` took ``time_s`` (waiting included) under ``current``; at the iteration's end."""
        if current is None:
            return  # nothing predicted to compare with (a baseline run, a plan read from a file)
        if current is not self._current:  # a plan just came into force: its first iteration is not judged
            self._current, self._over, self._under = current, 0, 0
            return
        if self._in_flight is not None or self._ready is not None or step < self._quiet_until_step:
            return
        if self._gone_asked:
            self._gone_asked = False
            if current.straggler_time_s is not None:
                self._start(step, None, RECOVERED)
            return
        expected_s = current.expected_iteration_s
        self._over = self._over + 1 if time_s > expected_s * (1 + self.tolerance) else 0
        slack = current.straggler_time_s is not None and time_s < expected_s * (1 - self.tolerance)
        self._under = self._under + 1 if slack else 0
        if self._over >= self.patience:
            straggler_s = self._rounded(time_s, current.baseline_time_s)
            log.warning("rank %d, iteration %d took %.4g s, %.1f %% more than plan %d expects (%.4g s): a straggler? "
                        "fetching the plan for T′ = %.4g s", current.rank, step, time_s,
                        100 * (time_s / expected_s - 1), current.point, expected_s, straggler_s)
            self._start(step, straggler_s, STRAGGLER)
        elif self._under >= self.patience:
            log.info("rank %d, iteration %d took %.4g s, below the straggler time %.4g s of plan %d: fetching the plan "
                     "with no straggler", current.rank, step, time_s, expected_s, current.point)
            self._start(step, None, RECOVERED)

    def take(self, step: int) -> Switch | None:
        """The plan to put in force at the start of iteration ``step``, if one is due (waits for a fetch
        that has been running since two iterations ago, at most ``fetch_timeout_s``)."""
        with self._lock:
            in_flight = self._in_flight
        if in_flight is not None and step >= in_flight[0] + 2 and not self._done.wait(self.fetch_timeout_s):
            log.error("the plan for the straggler is still not fetched after %.0f s: keeping the current plan",
                      self.fetch_timeout_s)
        with self._lock:
            ready, self._ready = self._ready, None
        if ready is not None:
            self.switches.append(ready)
        return ready

    # Whoever knows.

    def straggler_gone(self) -> None:
        """The straggler is gone: fetch the plan with no straggler at the next iteration's end."""
        self._gone_asked = True

    def _rounded(self, time_s: float, baseline_s: float) -> float:
        """``time_s`` down to a multiple of ``resolution`` × ``baseline_s`` (never below the baseline)."""
        quantum_s = self.resolution * baseline_s
        if quantum_s <= 0:
            return time_s
        return max(math.floor(time_s / quantum_s + 1e-9) * quantum_s, baseline_s)  # a multiple stays itself

    # The helper thread.

    def _start(self, step: int, straggler_time_s: float | None, reason: str) -> None:
        self._over = self._under = 0
        with self._lock:
            self._in_flight = (step, reason)
            self._done.clear()
        threading.Thread(target=self._run, args=(step, straggler_time_s, reason), name="wattwise-plan-fetch",
                         daemon=True).start()

    def _run(self, step: int, straggler_time_s: float | None, reason: str) -> None:
        switch: Switch | None = None
        try:
            switch = Switch(self._fetch(straggler_time_s), reason, step)
        except Exception as exc:  # never take the training down: the current plan stays
            log.error("could not fetch the plan for %s: %s; keeping the current plan, trying again in %d iterations",
                      f"T′ = {straggler_time_s:.4g} s" if straggler_time_s else "no straggler", exc,
                      self.cooldown_steps)
            self.errors.append(exc)
            self._quiet_until_step = step + self.cooldown_steps
        finally:
            with self._lock:
                self._ready = switch
                self._in_flight = None
                self._done.set()
