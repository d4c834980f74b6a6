"""Apply a Perseus frequency plan in a pipeline-parallel training loop (the Zeus client's job).

    from wattwise_agent.plan_client import FrequencyPlanClient

    with FrequencyPlanClient("plan.json", rank=pp_rank, allow_clock_changes=True) as client:  # dry run without
        for batch in loader:
            client.on_step_begin()
            for ... in pipeline_schedule:                  # this stage's computations, in order
                with client.instruction("forward"):
                    out = stage_model(inputs)
                ...
                with client.instruction("backward"):
                    out.backward(grad)
            client.on_step_end()

As the Zeus ``PipelineFrequencyOptimizer`` does (ml-energy/zeus,
``zeus/optimizer/pipeline_frequency/optimizer.py``): ``on_instruction_begin`` calls ``torch.cuda.synchronize()`` (so the previous computation's kernels finish at the previous
clock), pops the plan's next ``(instruction, MHz)``, checks the instruction is the one the training loop
runs, and hands the clock to a helper thread **only when it changes**; the helper calls NVML, so its
latency stays off the training thread (NVML calls release the GIL). ``on_step_end`` checks the
iteration used the whole plan and rewinds it. The clock is reset when the client is closed (and at
exit: :mod:`wattwise_agent.clock_guard`).

By default it is a dry run: no clock is changed; ``requested_mhz`` holds the sequence of clocks it would
have set. With ``measure=True`` (default) it also times every computation (and reads its energy when a
backend is given), so realised time and energy per instruction and clock can be compared with the
profile the plan came from: ``realised()``, ``records``, ``realised_csv()``.

**Plans from the app, events, stragglers.** ``plan`` may be a :class:`~wattwise_agent.plan_api.FetchedPlan`
(``PlanApi.rank_plan``: the plan with the planner's prediction), and ``on_event`` a Tracker (or its
``event`` method, or any ``(kind, fields)`` function): the client then reports into the run's stream

* ``plan`` when a plan comes into force (its first iteration, and every switch): ``frontier_id``, ``point``,
  ``rank``, ``straggler_time_s`` (0.0: none), ``reason`` (``start``, ``straggler``, ``recovered``),
  ``predicted_time_s``, ``predicted_energy_j``, ``baseline_time_s``, ``baseline_energy_j`` (the planner's, per
  pipeline iteration), ``dry_run`` (1: no clock changed) and ``baseline_run`` (the all-max run to compare
  with). A plan read from a file has no frontier or prediction: only ``rank``, ``straggler_time_s``,
  ``reason``, ``dry_run`` and ``baseline_run``;
* ``iteration`` every ``report_every`` iterations: ``rank``, ``step``, ``time_s`` (this rank's wall time of
  the iteration, waiting included), ``energy_j`` (its GPU energy over it; absent when not measured) and
  ``wait_s`` (the time spent in :meth:`sync`, where the pipeline waits for its peers).

``plan=None`` is a baseline run: no plan, no clock change, the computations bracketed as usual (an
emulated GPU runs them at its highest clock) and the same ``iteration`` events, so a planned run can be
compared with it. ``switcher`` (:class:`~wattwise_agent.plan_switch.StragglerSwitcher`) switches plans
when a straggler slows the pipeline (see that module for what it can and cannot detect).
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.backends.clocks import ClockControlError
from wattwise_agent.clock_guard import ClockActuator
from wattwise_agent.clock_setter import ClockSetter
from wattwise_agent.energy_meter import EnergyMeter, MeterReading
from wattwise_agent.frequency_plan import PlanError, PlanSource, RankPlan, load_rank_plan
from wattwise_agent.plan_api import FetchedPlan
from wattwise_agent.plan_switch import START, StragglerSwitcher
from wattwise_agent.stage_gpus import StageGpus, open_stage_gpus, stage_actuator
from wattwise_agent.torch_cuda import cuda_synchronize

log = logging.getLogger(__name__)

PLAN_EVENT = "plan"
ITERATION_EVENT = "iteration"
EventSink = Callable[[str, dict[str, Any]], None]


class PlanMismatch(RuntimeError):
    """The training loop and the plan disagree (instruction order or count); the text says where."""


@dataclass(frozen=True)
class InstructionRecord:
    """One computation as it ran: the planned clock, its time, its energy when measured."""

    step: int
    index: int  # position in the iteration's plan
    instruction: str
    planned_freq_mhz: int
    time_s: float
    energy_j: float | None
    sm_clock_mhz: int | None  # the SM clock the GPU reported at its end, when read


@dataclass(frozen=True)
class RealisedRow:
    """Means over every measured computation of one instruction at one planned clock."""

    instruction: str
    freq_mhz: int
    count: int
    time_s: float
    energy_j: float | None


@dataclass
class _Totals:
    count: int = 0
    time_s: float = 0.0
    energy_count: int = 0
    energy_j: float = 0.0


class FrequencyPlanClient:
    """Replays one rank's plan every iteration; see the module text.

    ``plan``: a path, JSON text, parsed JSON, a RankPlan, a FetchedPlan, or None (a baseline run: ``rank``
    needed); ``rank`` picks one rank of a whole-pipeline plan. ``backend``: ``"nvml"`` (default),
    ``"simulated"``, a GpuBackend (an emulated GPU too), or None (no GPU access: a dry run that times
    computations only). ``threaded=False`` sets clocks on the calling thread. ``on_event``: a Tracker, or a
    ``(kind, fields)`` function, told of ``plan`` and ``iteration`` events; ``baseline_run``: the name of
    the all-max run the plan events point to; ``switcher``: plan switching for stragglers.
    """

    def __init__(
        self,
        plan: PlanSource | RankPlan | FetchedPlan | None,
        *,
        rank: int | None = None,
        backend: GpuBackend | str | None = "nvml",
        gpus: Sequence[str] | int | None = None,
        allow_clock_changes: bool = False,
        environ: Mapping[str, str] | None = None,
        measure: bool = True,
        threaded: bool = True,
        synchronize: Callable[[], None] = cuda_synchronize,
        timer: Callable[[], float] = time.perf_counter,
        max_records: int = 100_000,
        handle_sigterm: bool = True,
        node: str = "sim-node",
        seed: int = 0,
        on_event: EventSink | Any = None,
        baseline_run: str = "",
        report_every: int = 1,
        switcher: StragglerSwitcher | None = None,
    ) -> None:
        if report_every < 1:
            raise ValueError(f"report_every must be 1 or more, got {report_every!r}")
        self.fetched: FetchedPlan | None = None
        if plan is None:
            if rank is None:
                raise ValueError("a baseline run (plan=None) needs rank=")
            self.plan: RankPlan | None = None
            self.rank = rank
        else:
            if isinstance(plan, FetchedPlan):
                self.fetched, plan = plan, plan.plan
            self.plan = load_rank_plan(plan, rank)
            self.rank = self.plan.rank
        if switcher is not None and self.fetched is None:
            raise ValueError("switcher= needs a plan fetched from the app (PlanApi.rank_plan): it compares iteration "
                             "times with the plan's prediction")
        self._on_event: EventSink | None = _event_sink(on_event)
        self.baseline_run = baseline_run
        self.report_every = report_every
        self.switcher = switcher
        self._gpus: StageGpus | None = None
        if backend is not None:
            self._gpus = open_stage_gpus(backend, gpus, node=node, seed=seed)
        try:
            if self._gpus is not None:
                self._actuator = stage_actuator(self._gpus, allow_clock_changes=allow_clock_changes,
                                                environ=environ, handle_sigterm=handle_sigterm)
            else:
                self._actuator = ClockActuator(None, allow_clock_changes=allow_clock_changes, environ=environ)
            try:
                if self.plan is not None:
                    self._check_supported(self.plan)
            except BaseException:
                self._actuator.close()
                raise
        except BaseException:
            if self._gpus is not None:
                self._gpus.close()
            raise
        self.dry_run = self._actuator.dry_run
        if self.dry_run and self.plan is not None:
            log.warning("rank %d: dry run: no GPU clock is changed; the clocks it would set are in requested_mhz "
                        "(changing them needs allow_clock_changes=True and WATTWISE_ALLOW_CLOCK_CHANGES=1)",
                        self.rank)
        self._meter = EnergyMeter(self._gpus.backend, timer=timer) if (self._gpus and measure) else None
        self._measure = measure
        self._synchronize = synchronize
        self._timer = timer
        self._setter = ClockSetter(self._actuator) if threaded else None
        self._cursor = 0
        self._open: tuple[str, int, MeterReading | None, float] | None = None
        self._last_requested: int | None = None
        self._step_started_s: float | None = None
        self._step_reading: MeterReading | None = None
        self._wait_s = 0.0
        self._synced = False
        self._announce: str | None = START if self.plan is not None else None  # a plan event is due
        self._totals: dict[tuple[str, int], _Totals] = {}
        self._closed = False
        self.steps = 0  # iterations completed
        self.requested_mhz: list[int] = []  # clock changes asked for, in order (a dry run's "would have set")
        self.records: deque[InstructionRecord] = deque(maxlen=max_records)
        self.step_times_s: deque[float] = deque(maxlen=max_records)
        self.plan_history: list[tuple[int, str, FetchedPlan | None]] = []  # (first step, reason, plan) in force

    def _check_supported(self, plan: RankPlan) -> None:
        if self._actuator.dry_run and (self._gpus is None or self._gpus.backend.clocks() is None):
            return
        try:
            supported = self._actuator.supported_mhz()
        except ClockControlError as exc:
            if not self._actuator.dry_run:
                raise
            log.warning("cannot check the plan's clocks against the GPU's: %s", exc)
            return
        if supported is None:
            return
        unsupported = [f for f in plan.frequencies_mhz if f not in supported]
        if unsupported:
            raise PlanError(f"rank {plan.rank}: {unsupported} MHz are not supported SM clocks of "
                            f"{self._actuator.description} (was the plan made from another GPU model's profile?)")

    @property
    def applied_mhz(self) -> list[int]:
        """Clocks really locked, in order (empty in a dry run)."""
        return list(self._actuator.applied_mhz)

    @property
    def current_mhz(self) -> int | None:
        return self._actuator.current_mhz

    # Hooks, called by the training loop.

    def on_step_begin(self) -> None:
        if self._cursor != 0:
            raise PlanMismatch(f"step {self.steps} begins but the previous one ran only {self._cursor} of the plan's "
                               f"{len(self.plan or ())} instructions and was not ended (on_step_end() missing?)")
        self._raise_setter_error()
        if self.switcher is not None:
            switch = self.switcher.take(self.steps)
            if switch is not None:
                self.use_plan(switch.fetched, switch.reason)
        if self._announce is not None:
            self.plan_history.append((self.steps, self._announce, self.fetched))
            self._emit(PLAN_EVENT, self._plan_fields(self._announce))
            self._announce = None
        self._wait_s, self._synced = 0.0, False
        self._step_reading = self._meter.read() if self._meter is not None else None
        self._step_started_s = self._timer()
        begin_iteration = getattr(self._gpus.backend, "begin_iteration", None) if self._gpus else None
        if begin_iteration is not None:
            begin_iteration()  # an emulated GPU: its straggler's time counts from here

    def use_plan(self, plan: FetchedPlan | RankPlan, reason: str) -> None:
        """Put another plan of this rank in force from the next iteration (between iterations only); a
        ``plan`` event with ``reason`` is emitted when it starts. A plan the GPU cannot run is refused
        (logged; the current plan stays)."""
        if self._cursor != 0 or self._open is not None:
            raise PlanMismatch("a plan can only be changed between iterations")
        fetched = plan if isinstance(plan, FetchedPlan) else None
        rank_plan = plan.plan if isinstance(plan, FetchedPlan) else plan
        if rank_plan.rank != self.rank:
            raise PlanError(f"the plan is for rank {rank_plan.rank}, not rank {self.rank}")
        try:
            self._check_supported(rank_plan)
        except (PlanError, ClockControlError) as exc:
            log.error("rank %d: not switching plans (%s): %s", self.rank, reason, exc)
            return
        if self.plan is not None and len(rank_plan) != len(self.plan):
            log.error("rank %d: not switching plans (%s): the new plan has %d computations per iteration, this one %d",
                      self.rank, reason, len(rank_plan), len(self.plan))
            return
        self.plan, self.fetched, self._announce = rank_plan, fetched, reason
        log.info("rank %d: plan %s in force from iteration %d (%s)", self.rank,
                 fetched.point if fetched is not None else "(file)", self.steps, reason)

    def on_instruction_begin(self, name: str) -> None:
        self._synchronize()  # the previous computation ends at its own clock
        if self._open is not None:
            raise PlanMismatch(f"instruction {name!r} begins inside {self._open[0]!r}: end that one first")
        index = self._cursor
        if self.plan is not None:
            if self._cursor >= len(self.plan):
                raise PlanMismatch(f"step {self.steps}: instruction #{self._cursor + 1} ({name!r}) but the plan of "
                                   f"rank {self.rank} has {len(self.plan)} per iteration (on_step_end() missing, or "
                                   "the plan is for another schedule or number of microbatches)")
            planned, freq_mhz = self.plan.frequencies[self._cursor]
            if planned != name:
                raise PlanMismatch(f"step {self.steps}, instruction #{self._cursor + 1}: the plan of rank {self.rank} "
                                   f"expects {planned!r} but the training loop runs {name!r} (another pipeline "
                                   "schedule?)")
            if freq_mhz != self._last_requested:
                self._last_requested = freq_mhz
                self.requested_mhz.append(freq_mhz)
                if self._setter is not None:
                    self._setter.submit(freq_mhz)
                else:
                    self._actuator.set_mhz(freq_mhz)
        self._cursor += 1
        reading = self._meter.read() if self._meter is not None else None
        self._open = (name, index, reading, self._timer())
        if self._gpus is not None:
            self._gpus.backend.begin_computation(name)

    def on_instruction_end(self, name: str) -> None:
        if self._open is None or self._open[0] != name:
            raise PlanMismatch(f"on_instruction_end({name!r}) but the open instruction is "
                               f"{self._open[0] if self._open else None!r}")
        _, index, begin, start_s = self._open
        self._open = None
        if self._gpus is not None:
            self._gpus.backend.end_computation(name)  # an emulated GPU stretches it to its profiled time here
        if not self._measure:
            return
        self._synchronize()
        time_s = self._timer() - start_s
        energy_j = clock_mhz = None
        if self._meter is not None and begin is not None:
            end = self._meter.read()
            energy_j = self._meter.energy_j(begin, end)
            clock_mhz = end.sm_clock_mhz[0]
        freq_mhz = self.plan.frequencies[index][1] if self.plan is not None else (clock_mhz or 0)
        self.records.append(InstructionRecord(self.steps, index, name, freq_mhz, time_s, energy_j, clock_mhz))
        totals = self._totals.setdefault((name, freq_mhz), _Totals())
        totals.count += 1
        totals.time_s += time_s
        if energy_j is not None:
            totals.energy_count += 1
            totals.energy_j += energy_j

    def sync(self, all_reduce: Callable[[], object] | None = None) -> float:
        """The iteration's sync with the other pipelines (where the gradient all-reduce waits for the
        slowest): runs ``all_reduce`` when given, and on an emulated GPU waits for its straggler. The time
        spent here is the iteration's ``wait_s``; returned. Called by ``on_step_end`` if the loop did not."""
        if self._open is not None:
            raise PlanMismatch(f"sync() inside instruction {self._open[0]!r}: end it first")
        start_s = self._timer()
        if all_reduce is not None:
            all_reduce()
        wait_for_peers = getattr(self._gpus.backend, "wait_for_peers", None) if self._gpus else None
        if wait_for_peers is not None:
            wait_for_peers()
        waited_s = self._timer() - start_s
        self._wait_s += waited_s
        self._synced = True
        return waited_s

    def on_step_end(self) -> None:
        if self._open is not None:
            raise PlanMismatch(f"on_step_end() inside instruction {self._open[0]!r}: end it first")
        if self.plan is not None and self._cursor != len(self.plan):
            raise PlanMismatch(f"step {self.steps} ended after {self._cursor} of the {len(self.plan)} instructions in "
                               f"the plan of rank {self.rank}: the plan is for another schedule or number of "
                               "microbatches, or an instruction was not bracketed")
        self._cursor = 0
        if not self._synced:
            self.sync()
        if self._step_started_s is not None:
            time_s = self._timer() - self._step_started_s
            self.step_times_s.append(time_s)
            self._step_started_s = None
            if self.steps % self.report_every == 0:
                self._emit(ITERATION_EVENT, self._iteration_fields(time_s))
            if self.switcher is not None:
                self.switcher.observe(self.steps, time_s, self.fetched)
        self.steps += 1
        self._raise_setter_error()

    # Events.

    def _emit(self, kind: str, fields: dict[str, Any]) -> None:
        if self._on_event is not None:
            self._on_event(kind, fields)

    def _plan_fields(self, reason: str) -> dict[str, Any]:
        fetched = self.fetched
        fields: dict[str, Any] = {"rank": self.rank, "reason": reason}
        if fetched is not None:
            fields.update(frontier_id=fetched.frontier_id, point=fetched.point,
                          predicted_time_s=fetched.predicted_time_s, predicted_energy_j=fetched.predicted_energy_j,
                          baseline_time_s=fetched.baseline_time_s, baseline_energy_j=fetched.baseline_energy_j)
        fields["straggler_time_s"] = float(fetched.straggler_time_s or 0.0) if fetched is not None else 0.0
        fields["dry_run"] = int(self.dry_run)
        fields["baseline_run"] = self.baseline_run
        return fields

    def _iteration_fields(self, time_s: float) -> dict[str, Any]:
        fields: dict[str, Any] = {"rank": self.rank, "step": self.steps, "time_s": time_s}
        begin, self._step_reading = self._step_reading, None
        if self._meter is not None and begin is not None:
            energy_j = self._meter.energy_j(begin, self._meter.read())
            if energy_j is not None:
                fields["energy_j"] = energy_j
        fields["wait_s"] = self._wait_s
        return fields

    @contextlib.contextmanager
    def instruction(self, name: str) -> Iterator[None]:
        self.on_instruction_begin(name)
        yield
        self.on_instruction_end(name)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self.on_step_begin()
        yield
        self.on_step_end()

    def flush(self) -> None:
        """Wait until the helper thread has applied (or, dry, recorded) every clock asked for."""
        if self._setter is not None:
            self._setter.flush()
        self._raise_setter_error()

    def _raise_setter_error(self) -> None:
        if self._setter is not None and self._setter.error is not None:
            raise self._setter.error

    # Realised figures.

    def realised(self) -> list[RealisedRow]:
        """Mean time and energy per (instruction, planned clock), over every measured computation."""
        rows = []
        for (name, freq), t in sorted(self._totals.items(), key=lambda kv: (kv[0][0] != "forward", -kv[0][1])):
            energy = t.energy_j / t.energy_count if t.energy_count else None
            rows.append(RealisedRow(name, freq, t.count, t.time_s / t.count, energy))
        return rows

    def realised_csv(self) -> str:
        """The realised means as a profile CSV (``stage`` = rank): rows whose energy was measured."""
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(("stage", "instruction", "frequency", "time", "energy", "count"))
        for row in self.realised():
            if row.energy_j is not None:
                writer.writerow((self.rank, row.instruction, row.freq_mhz, repr(row.time_s), repr(row.energy_j),
                                 row.count))
        return out.getvalue()

    # Lifetime.

    def close(self) -> None:
        """Stop the helper thread and reset the clocks (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._setter is not None:
                self._setter.stop()
        finally:
            try:
                self._actuator.close()
            finally:
                if self._gpus is not None:
                    self._gpus.close()

    def __enter__(self) -> FrequencyPlanClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _event_sink(on_event: EventSink | Any) -> EventSink | None:
    """A Tracker (anything with an ``event(kind, fields)`` method) or an ``(kind, fields)`` function."""
    if on_event is None:
        return None
    method = getattr(on_event, "event", None)
    if callable(method):
        return method
    if callable(on_event):
        return on_event
    raise TypeError(f"on_event must be a Tracker or a function (kind, fields), got {type(on_event).__name__}")
