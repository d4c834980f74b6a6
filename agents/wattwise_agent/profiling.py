"""Profile one pipeline stage for Perseus: time and energy of forward and backward at each SM clock.

    from wattwise_agent.profiling import StageProfiler

    with StageProfiler(stage=pp_rank, allow_clock_changes=True) as profiler:   # dry run without it
        for step in range(profiler.planned_steps):          # the same on every rank: no one waits
            with profiler.step():
                for microbatch in ...:                       # the pipeline schedule of this stage
                    recv(...)
                    with profiler.instruction("forward"):
                        out = stage_model(inputs)
                    send(...)
                    ...
                    with profiler.instruction("backward"):
                        out.backward(grad)
    profile = profiler.result()                              # profile.to_csv(): one stage's rows

What it does (as the profilers of the Perseus artifact do it: Merak's offline ``profile`` and the
Perseus server's ``InstructionProfiler``): with clock changes allowed it walks the supported SM clocks from the highest down to ``min_freq_mhz`` (850 MHz default),
locks each in turn for ``warmup_steps`` discarded steps then ``measure_steps`` measured ones, and
stops early once it is past half of the clocks and the stage's energy per microbatch (forward +
backward) has risen ``early_stop_rises`` times in a row (lower clocks would only be Pareto-dominated).
Every instruction is bracketed by ``torch.cuda.synchronize()`` (when CUDA is in use) and two readings
of the GPUs' energy counters; rows are the means: seconds and joules of one forward or backward of one
microbatch. Time between instructions (pipeline communication, waiting) is not counted.

In a dry run (the default; see :mod:`wattwise_agent.clock_guard`) no clock is changed: it profiles at the
clock the GPU runs at, one row per instruction, and says so in ``StageProfile.notes``. The simulated
backend works too (dry run only: it has no clocks to lock); its energies come from the simulator, not
from the code being timed. The emulated backend (``wattwise_agent.backends.emulated``) has clocks: a sweep
on it gives back, for each clock, the time and energy of the profile it emulates.

After the sweep the clocks are reset and the remaining hooks cost nothing, so the training loop can
just carry on. In pipeline parallelism every rank must run the same number of steps: loop for
``planned_steps`` (identical on ranks with the same GPU model), not until ``done``.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import statistics
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType

from wattwise_agent.backends.base import GpuBackend
from wattwise_agent.clock_guard import ClockActuator
from wattwise_agent.energy_meter import EnergyMeter, MeterReading
from wattwise_agent.stage_gpus import StageGpus, open_stage_gpus, stage_actuator
from wattwise_agent.torch_cuda import cuda_synchronize

log = logging.getLogger(__name__)

INSTRUCTIONS = ("forward", "backward")
CSV_COLUMNS = ("stage", "instruction", "frequency", "time", "energy")
DEFAULT_MIN_FREQ_MHZ = 850


class ProfilerError(RuntimeError):
    """The profiler was used out of order, or measured nothing usable; the text says what to change."""


@dataclass(frozen=True)
class ProfileRow:
    """Mean time and energy of one computation (one microbatch) at one SM clock."""

    stage: int
    instruction: str
    freq_mhz: int
    time_s: float
    energy_j: float
    count: int  # measured computations behind the means


@dataclass(frozen=True)
class StageProfile:
    """One stage's profile; ``to_csv()`` is the Perseus CSV (``stage,instruction,frequency,time,energy``)."""

    stage: int
    rows: tuple[ProfileRow, ...]
    dry_run: bool
    gpu_name: str
    gpu_uuids: tuple[str, ...]
    simulated: bool
    energy_estimated: bool  # a GPU without the energy counter: energies are power × time estimates
    complete: bool  # the sweep ran to its end (or its early stop)
    stopped_early: bool
    p_blocking_w: float | None = None
    notes: tuple[str, ...] = field(default=())

    @property
    def frequencies_mhz(self) -> tuple[int, ...]:
        """The profiled SM clocks, highest first."""
        return tuple(sorted({r.freq_mhz for r in self.rows}, reverse=True))

    def to_csv(self) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for instruction in INSTRUCTIONS:
            for row in sorted((r for r in self.rows if r.instruction == instruction), key=lambda r: -r.freq_mhz):
                writer.writerow((row.stage, row.instruction, row.freq_mhz, repr(row.time_s), repr(row.energy_j)))
        return out.getvalue()


@dataclass
class _Phase:
    """One SM clock of the sweep (None: the current clock, in a dry run) and what was measured at it."""

    freq_mhz: int | None
    time_s: dict[str, list[float]] = field(default_factory=lambda: {i: [] for i in INSTRUCTIONS})
    energy_j: dict[str, list[float]] = field(default_factory=lambda: {i: [] for i in INSTRUCTIONS})
    clocks_mhz: list[int] = field(default_factory=list)
    failed_readings: int = 0

    def mean_energy_j(self, instruction: str) -> float | None:
        values = self.energy_j[instruction]
        return sum(values) / len(values) if values else None


class StageProfiler:
    """Per-stage profiler; see the module text. Use as a context manager so clocks are always reset.

    ``backend``: ``"nvml"`` (default), ``"simulated"`` or a GpuBackend; ``gpus``: NVML selectors (default:
    the current CUDA device) or a simulated count. ``freqs_mhz``: profile these clocks (each must be
    supported) instead of every supported one down to ``min_freq_mhz``. ``synchronize`` and ``timer``
    default to ``torch.cuda.synchronize`` (when CUDA is in use) and ``time.perf_counter``.
    """

    def __init__(
        self,
        stage: int,
        *,
        backend: GpuBackend | str = "nvml",
        gpus: Sequence[str] | int | None = None,
        allow_clock_changes: bool = False,
        freqs_mhz: Sequence[int] | None = None,
        min_freq_mhz: int = DEFAULT_MIN_FREQ_MHZ,
        warmup_steps: int = 2,
        measure_steps: int = 5,
        early_stop_rises: int = 5,
        environ: Mapping[str, str] | None = None,
        synchronize: Callable[[], None] = cuda_synchronize,
        timer: Callable[[], float] = time.perf_counter,
        handle_sigterm: bool = True,
        node: str = "sim-node",
        seed: int = 0,
    ) -> None:
        if isinstance(stage, bool) or not isinstance(stage, int) or stage < 0:
            raise ValueError(f"stage must be a pipeline stage number (0 or more), got {stage!r}")
        if warmup_steps < 0 or measure_steps < 1:
            raise ValueError("warmup_steps must be 0 or more and measure_steps 1 or more")
        if early_stop_rises < 1:
            raise ValueError("early_stop_rises must be 1 or more")
        self.stage = stage
        self.warmup_steps = warmup_steps
        self.measure_steps = measure_steps
        self.early_stop_rises = early_stop_rises
        self._synchronize = synchronize
        self._timer = timer
        self._gpus: StageGpus = open_stage_gpus(backend, gpus, node=node, seed=seed)
        try:
            self._actuator: ClockActuator = stage_actuator(
                self._gpus, allow_clock_changes=allow_clock_changes, environ=environ, handle_sigterm=handle_sigterm
            )
            try:
                self._phases = [_Phase(f) for f in self._sweep(freqs_mhz, min_freq_mhz)]
            except BaseException:
                self._actuator.close()
                raise
        except BaseException:
            self._gpus.close()
            raise
        self._meter = EnergyMeter(self._gpus.backend, timer=timer)
        self.dry_run = self._actuator.dry_run
        if self.dry_run:
            log.warning("stage %d: dry run: profiling at the current clock only, no clock is changed (a sweep needs "
                        "allow_clock_changes=True and WATTWISE_ALLOW_CLOCK_CHANGES=1)", stage)
        self._lock = threading.Lock()
        self._phase_index = 0  # the clock being profiled
        self._finished = 0  # clocks fully profiled
        self._step_in_phase = 0
        self._in_step = False
        self._open: tuple[str, MeterReading | None, float] | None = None
        self._rises = 0
        self._previous_energy_j: float | None = None
        self.stopped_early = False
        self.done = False
        self.steps_seen = 0
        self.p_blocking_w: float | None = None
        self._closed = False

    def _sweep(self, freqs_mhz: Sequence[int] | None, min_freq_mhz: int) -> list[int | None]:
        if self._actuator.dry_run:
            if freqs_mhz is not None:
                log.warning("stage %d: dry run: freqs_mhz is ignored, only the current clock is profiled", self.stage)
            return [None]
        supported = self._actuator.supported_mhz() or []
        if freqs_mhz is not None:
            chosen = sorted({int(f) for f in freqs_mhz}, reverse=True)
            unsupported = [f for f in chosen if f not in supported]
            if unsupported:
                raise ValueError(f"freqs_mhz {unsupported} are not supported SM clocks of {self._actuator.description} "
                                 f"(supported: {supported[0] if supported else '?'} … {supported[-1] if supported else '?'}"
                                 " MHz)")
        else:
            chosen = [f for f in supported if f >= min_freq_mhz]
        if not chosen:
            raise ValueError(f"no supported SM clock at or above {min_freq_mhz} MHz on {self._actuator.description}")
        return list(chosen)

    # What the caller can look at while it runs.

    @property
    def planned_steps(self) -> int:
        """Steps the whole sweep takes without an early stop (the same on every rank of one GPU model)."""
        return (self.warmup_steps + self.measure_steps) * len(self._phases)

    @property
    def frequencies_mhz(self) -> list[int | None]:
        """The clocks the sweep will visit, highest first (``[None]``: dry run, the current clock)."""
        return [p.freq_mhz for p in self._phases]

    @property
    def current_freq_mhz(self) -> int | None:
        """The clock locked now (None: the driver's default clocks)."""
        return self._actuator.current_mhz

    @property
    def measuring(self) -> bool:
        return not self.done and self._in_step and self._step_in_phase >= self.warmup_steps

    # Hooks.

    def on_step_begin(self) -> None:
        with self._lock:
            if self._in_step:
                raise ProfilerError("on_step_begin() twice without on_step_end()")
            self._in_step = True
            if self.done or self._step_in_phase > 0:
                return
            freq = self._phases[self._phase_index].freq_mhz
        if freq is not None:
            self._synchronize()  # the previous step's kernels finish at the previous clock
            self._actuator.set_mhz(freq)
            log.info("stage %d: profiling at %d MHz", self.stage, freq)

    def on_step_end(self) -> None:
        with self._lock:
            if not self._in_step:
                raise ProfilerError("on_step_end() without on_step_begin()")
            if self._open is not None:
                raise ProfilerError(f"on_step_end() inside instruction {self._open[0]!r}: end it first")
            self._in_step = False
            self.steps_seen += 1
            if self.done:
                return
            self._step_in_phase += 1
            if self._step_in_phase < self.warmup_steps + self.measure_steps:
                return
            finished = self._finish_phase()
        if finished:
            self._synchronize()
            self._actuator.reset()

    def on_instruction_begin(self, name: str) -> None:
        if name not in INSTRUCTIONS:
            raise ValueError(f"instruction {name!r}: the planner knows only {', '.join(INSTRUCTIONS)}")
        with self._lock:
            if self._open is not None:
                raise ProfilerError(f"instruction {name!r} begins inside {self._open[0]!r}: end that one first")
            if not self._in_step:
                raise ProfilerError(f"instruction {name!r} outside a step: call on_step_begin() first "
                                    "(or use `with profiler.step():`)")
            measuring = self.measuring
        if not measuring:
            self._open = (name, None, 0.0)
            self._gpus.backend.begin_computation(name)
            return
        self._synchronize()  # the computation starts with nothing else queued
        reading = self._meter.read()
        self._open = (name, reading, self._timer())
        self._gpus.backend.begin_computation(name)

    def on_instruction_end(self, name: str) -> None:
        if self._open is None or self._open[0] != name:
            raise ProfilerError(f"on_instruction_end({name!r}) but the open instruction is "
                                f"{self._open[0] if self._open else None!r}")
        _, begin, start_s = self._open
        self._open = None
        self._gpus.backend.end_computation(name)  # an emulated GPU stretches it to its profiled time here
        if begin is None:
            return
        self._synchronize()  # its kernels are done
        elapsed_s = self._timer() - start_s
        end = self._meter.read()
        energy_j = self._meter.energy_j(begin, end)
        with self._lock:
            phase = self._phases[self._phase_index]
            phase.time_s[name].append(elapsed_s)
            if energy_j is None:
                phase.failed_readings += 1
            else:
                phase.energy_j[name].append(energy_j)
            clock = end.sm_clock_mhz[0]
            if clock:
                phase.clocks_mhz.append(clock)

    @contextlib.contextmanager
    def step(self) -> Iterator[None]:
        self.on_step_begin()
        yield
        self.on_step_end()

    @contextlib.contextmanager
    def instruction(self, name: str) -> Iterator[None]:
        self.on_instruction_begin(name)
        yield
        self.on_instruction_end(name)

    def _finish_phase(self) -> bool:
        """Called under the lock at the end of a phase's last step; True when the sweep is over."""
        phase = self._phases[self._phase_index]
        means = [phase.mean_energy_j(i) for i in INSTRUCTIONS]
        label = "the current clock" if phase.freq_mhz is None else f"{phase.freq_mhz} MHz"
        if None in means:
            missing = [i for i, m in zip(INSTRUCTIONS, means) if m is None]
            log.warning("stage %d: no %s measured at %s", self.stage, " or ".join(missing), label)
        energy_j = sum(m for m in means if m is not None)
        index = self._phase_index
        # Merak's rule: past half of the clocks, stop after enough consecutive rises of the energy.
        if index > len(self._phases) // 2 and self._previous_energy_j is not None and energy_j > self._previous_energy_j:
            self._rises += 1
        else:
            self._rises = 0
        self._previous_energy_j = energy_j
        self._finished = index + 1
        self._step_in_phase = 0
        if self._finished >= len(self._phases):
            self.done = True
        elif self._rises >= self.early_stop_rises:
            self.done = self.stopped_early = True
            log.info("stage %d: energy rose %d times in a row down to %s: stopping the sweep early",
                     self.stage, self._rises, label)
        else:
            self._phase_index = self._finished
        return self.done

    # Results.

    def result(self) -> StageProfile:
        """The profile so far (every finished clock); raise ProfilerError if nothing usable was measured."""
        with self._lock:
            finished = self._phases[: self._finished]
            if not finished:
                raise ProfilerError(
                    f"no clock finished yet: each takes {self.warmup_steps} warm-up and {self.measure_steps} measured "
                    f"steps ({self.steps_seen} step(s) seen)"
                )
            rows = [row for phase in finished for row in self._phase_rows(phase)]
        gpus = self._meter.gpus
        notes = []
        if self.dry_run:
            notes.append("dry run: profiled at the current clock only, no clock was changed")
        if self._gpus.backend.name == "emulated":
            notes.append("emulated GPUs: times and energies follow the profile they emulate")
        elif self._gpus.backend.simulated:
            notes.append("simulated GPUs: energies come from the simulator, not from the profiled code")
        if self._meter.estimated:
            notes.append("a GPU has no energy counter: energies are power × time estimates")
        if not self.done:
            notes.append(f"sweep incomplete: {len(finished)} of {len(self._phases)} clocks profiled")
        if self.stopped_early:
            notes.append(f"stopped early at {rows[-1].freq_mhz} MHz: energy rose {self._rises} times in a row")
        return StageProfile(
            stage=self.stage,
            rows=tuple(rows),
            dry_run=self.dry_run,
            gpu_name=gpus[0].name if gpus else "",
            gpu_uuids=tuple(g.uuid for g in gpus),
            simulated=self._gpus.backend.simulated,
            energy_estimated=self._meter.estimated,
            complete=self.done,
            stopped_early=self.stopped_early,
            p_blocking_w=self.p_blocking_w,
            notes=tuple(notes),
        )

    def _phase_rows(self, phase: _Phase) -> list[ProfileRow]:
        freq = phase.freq_mhz
        if freq is None:
            if not phase.clocks_mhz:
                raise ProfilerError("dry run: the GPU reported no SM clock, so the profile has no frequency")
            freq = round(statistics.median(phase.clocks_mhz))
        label = f"{freq} MHz"
        rows = []
        for instruction in INSTRUCTIONS:
            times, energies = phase.time_s[instruction], phase.energy_j[instruction]
            if not times:
                raise ProfilerError(f"no {instruction} was measured at {label}: bracket every {instruction} of the "
                                    f"stage with profiler.instruction({instruction!r})")
            if not energies:
                raise ProfilerError(f"every energy reading failed during {instruction} at {label}")
            time_s, energy_j = sum(times) / len(times), sum(energies) / len(energies)
            if time_s <= 0 or energy_j <= 0:
                raise ProfilerError(
                    f"{instruction} at {label}: the energy counter did not advance over {len(energies)} computations "
                    "(each is too short for the counter's resolution): measure more steps or larger microbatches"
                )
            rows.append(ProfileRow(self.stage, instruction, freq, time_s, energy_j, len(energies)))
        return rows

    def measure_blocking_power(self, window_s: float = 5.0, *, block: Callable[[float], None] | None = None) -> float:
        """Measure P_blocking (W, summed over the stage's GPUs) and keep it for ``result()``.

        Call it outside the sweep (before the first step or once ``done``): the GPUs run at their
        default clocks. ``block(window_s)`` should keep them blocked the way the pipeline does (e.g. a
        receive that waits for a peer); the default only sleeps, which measures idle power, a lower
        bound of the blocking power.
        """
        with self._lock:
            if not self.done and (self._in_step or self.steps_seen > 0):
                raise ProfilerError("measure_blocking_power() during the sweep (a clock is locked): call it before "
                                    "the first step or once the sweep is done")
        self.p_blocking_w = measure_blocking_power_w(self._gpus.backend, window_s=window_s, block=block,
                                                     timer=self._timer)
        return self.p_blocking_w

    # Lifetime.

    def close(self) -> None:
        """Reset any locked clock and release the GPUs (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._actuator.close()
        finally:
            self._gpus.close()

    def __enter__(self) -> StageProfiler:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def measure_blocking_power_w(
    backend: GpuBackend,
    *,
    window_s: float = 5.0,
    block: Callable[[float], None] | None = None,
    rate_hz: float = 10.0,
    timer: Callable[[], float] = time.perf_counter,
) -> float:
    """Mean power (W) of the backend's GPUs, summed, while ``block(window_s)`` runs (default: sleep).

    Counter GPUs: counter difference over the window. GPUs without a counter: power read at
    ``rate_hz`` in a helper thread, integrated (trapezoid).
    """
    if window_s <= 0:
        raise ValueError("window_s must be positive")
    meter = EnergyMeter(backend, timer=timer)
    stop = threading.Event()
    readings: list[MeterReading] = [meter.read()]

    def sample() -> None:
        while not stop.wait(1 / rate_hz):
            readings.append(meter.read())

    sampler = threading.Thread(target=sample, name="wattwise-p-blocking", daemon=True) if meter.estimated else None
    if sampler is not None:
        sampler.start()
    try:
        (block or time.sleep)(window_s)
    finally:
        stop.set()
        if sampler is not None:
            sampler.join()
    readings.append(meter.read())
    energy_j = 0.0
    for begin, end in zip(readings, readings[1:]):
        part = meter.energy_j(begin, end)
        if part is None:
            raise ProfilerError("an energy reading failed while measuring the blocking power: measure again")
        energy_j += part
    elapsed_s = readings[-1].t_s - readings[0].t_s
    if elapsed_s <= 0 or energy_j <= 0:
        raise ProfilerError("the blocking-power window measured no energy: use a longer window")
    return energy_j / elapsed_s
