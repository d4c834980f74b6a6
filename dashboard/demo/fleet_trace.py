"""Synthetic training traces at fleet scale: a day of 64 GPUs at 10 Hz drawn as numpy arrays, chunk by chunk.

The agent's simulated backend (``agents/wattwise_agent/backends/simulated.py``) yields one reading per call: right for
streaming through the real agent, far too slow for the 55 million samples of a fleet-day. This module
draws the same kind of trace as whole arrays for the bulk path (``dashboard.telemetry.bulkload``):

* timestamps as an agent takes them: each node ticks every ``period_ms`` from its own start, a few ms
  late, all its GPUs sharing the tick, and takes a final reading exactly at the end;
* an idle start (loading the model and data: clocks parked, ~80 W), then iteration-periodic training
  power (forward, backward, an all-reduce dip, the optimizer), an evaluation pause every ~45 minutes, a
  checkpoint pause every two hours, data-loader stalls, and a few short spikes to the 700 W cap;
* each GPU its own character: static and dynamic power a few per cent apart, a slow drift, and a
  temperature that follows power with a two-minute lag (with leakage rising as it warms);
* the energy counter is the integral of the reported power (mW × ms, floored to mJ) on top of an offset,
  as a counter that has counted since the driver loaded, so counter and power agree. A counter reset
  (driver reload) can be asked for.

The same spec always draws the same trace, whatever machine. Everything is labelled simulated.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from dashboard.telemetry.bulkload import Chunk, GpuSamples, GpuSpec, NodeSpec, RunSpec
from dashboard.telemetry.models import Gpu
from planner.units import MILLIWATTS_PER_W, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_S
from wattwise_agent.backends.simulated import SIMULATED_GPU_NAME, simulated_uuid

MAX_CLOCK_MHZ = 1980
IDLE_CLOCK_MHZ = 345
CLOCK_STEP_MHZ = 15
POWER_CAP_W = 700.0
THERMAL_C_PER_W = 0.065
THERMAL_TIME_CONSTANT_MS = 120_000.0
LEAKAGE_W_PER_C = 0.5
MEAN_LATENESS_MS = 3.0
# Training step phases: (end as a fraction of the step, utilisation, switching activity).
STEP_PHASES = ((0.32, 0.92, 0.85), (0.87, 0.97, 1.0), (0.95, 0.25, 0.25), (1.0, 0.5, 0.55))


@dataclass(frozen=True)
class TraceSpec:
    """A run of ``len(nodes)`` × ``gpus_per_node`` GPUs from ``start_ms`` for ``duration_ms``."""

    nodes: tuple[str, ...]
    gpus_per_node: int
    start_ms: int
    duration_ms: int
    period_ms: int = 100  # 10 Hz, the agent's default
    seed: int = 0
    power_scale: float = 1.0  # dynamic power against a baseline run (a bigger model, a warmer hall)
    clock_cap_mhz: int = MAX_CLOCK_MHZ  # an SM clock cap (a frequency plan): less power, longer steps
    chunk_ms: int = MS_PER_HOUR
    stagger_ms: int = 1000  # nodes start up to this much apart (1: all exactly at start_ms)
    reset: tuple[int, int, int] | None = None  # (node position, GPU index, ms into the run): counter reset

    def __post_init__(self) -> None:
        if self.duration_ms <= 0 or self.duration_ms % self.period_ms:
            raise ValueError("duration_ms must be a positive whole number of sampling periods")
        if self.chunk_ms <= 0 or self.chunk_ms % MS_PER_MINUTE:
            raise ValueError("chunk_ms must be a whole number of minutes")
        if self.period_ms < 2 or self.stagger_ms < 1:
            raise ValueError("period_ms must be at least 2 ms and stagger_ms at least 1 ms")

    @property
    def samples_per_gpu(self) -> int:
        return self.duration_ms // self.period_ms + 1  # the ticks, and the final reading at the end

    @property
    def samples(self) -> int:
        return len(self.nodes) * self.gpus_per_node * self.samples_per_gpu

    def run_spec(self, project: str, run: str, *, tags: tuple[str, ...] = ()) -> RunSpec:
        """What ``bulkload.load_run`` needs to store this trace as a run of ``project``."""
        nodes = tuple(
            NodeSpec(
                name=node, stream=stream_id(project, run, node), host=node,
                gpus=tuple(
                    GpuSpec(i, simulated_uuid(node, i), SIMULATED_GPU_NAME, Gpu.EnergySource.COUNTER,
                            Gpu.PowerField.AVERAGE)
                    for i in range(self.gpus_per_node)
                ),
            )
            for node in self.nodes
        )
        return RunSpec(project=project, run=run, nodes=nodes, simulated=True, tags=tags)

    def chunks(self) -> Iterator[Chunk]:
        """The trace, ``chunk_ms`` of it at a time (memory stays bounded whatever the duration)."""
        return _Trace(self).chunks()


def stream_id(project: str, run: str, node: str) -> str:
    """A stable agent-session id, so building the same run twice stores the same rows."""
    return hashlib.sha256(f"{project}\n{run}\n{node}".encode()).hexdigest()[:32]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64: a counter-based hash, so a tick's lateness does not depend on how time is chunked."""
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


@dataclass
class _GpuState:
    idle_w: np.ndarray  # (G,) static power at 35 °C
    clock_idle_w: np.ndarray
    dynamic_w: np.ndarray
    ambient_c: np.ndarray
    drift: np.ndarray  # (G, 3): amplitude, period (ms), phase
    lag_ms: np.ndarray  # each GPU's offset within the step (the slowest sets the pace)
    counter_uj: np.ndarray  # µJ the counter has counted (its offset, then energy; reset to zero once)
    temp_c: np.ndarray
    last_t: int | None = None


class _Trace:
    def __init__(self, spec: TraceSpec) -> None:
        self.spec = spec
        run = np.random.default_rng([spec.seed, 0xF1EE7])
        slowdown = 1.0 + 0.6 * (MAX_CLOCK_MHZ / spec.clock_cap_mhz - 1.0)  # compute-bound share of a step
        self.loading_ms = float(run.uniform(4, 9)) * MS_PER_MINUTE
        self.step_ms = float(run.uniform(950, 1250)) * slowdown
        self.eval_every_ms = float(run.uniform(40, 55)) * MS_PER_MINUTE
        self.eval_ms = float(run.uniform(2, 4)) * MS_PER_MINUTE
        self.ckpt_every_ms, self.ckpt_ms = 120.0 * MS_PER_MINUTE, float(run.uniform(60, 120)) * MS_PER_S
        self.node_start = [spec.start_ms + int(run.integers(0, spec.stagger_ms)) for _ in spec.nodes]
        self.gpus = [self._draw_gpus(n) for n in range(len(spec.nodes))]

    def _draw_gpus(self, n: int) -> _GpuState:
        g = self.spec.gpus_per_node
        rng = np.random.default_rng([self.spec.seed, n, 0x69B])
        ambient = rng.uniform(27, 33, g)
        return _GpuState(
            idle_w=rng.uniform(70, 85, g), clock_idle_w=rng.uniform(20, 35, g),
            dynamic_w=rng.uniform(560, 650, g) * self.spec.power_scale, ambient_c=ambient,
            drift=np.column_stack([rng.uniform(0.01, 0.03, g), rng.uniform(3, 8, g) * MS_PER_HOUR,
                                   rng.uniform(0, 2 * math.pi, g)]),
            lag_ms=rng.uniform(0, 30, g),
            counter_uj=rng.integers(10**12, 5 * 10**13, g),
            temp_c=ambient + THERMAL_C_PER_W * 80.0,
        )

    def chunks(self) -> Iterator[Chunk]:
        spec, size = self.spec, self.spec.chunk_ms
        first_final = min(self.node_start) + spec.duration_ms
        # The last chunk starts before every node's final reading, so a final reading that closes a
        # window finds that window's other readings in the same chunk.
        last_start = (first_final - 1) // size * size
        start = min(self.node_start) // size * size
        while True:
            end = None if start >= last_start else start + size
            readings = tuple(self._node(n, start, end) for n in range(len(spec.nodes)))
            yield Chunk(readings, end)
            if end is None:
                return
            start = end

    def _ticks(self, n: int, start: int, end: int | None) -> np.ndarray:
        spec, origin = self.spec, self.node_start[n]
        period, ticks = spec.period_ms, spec.duration_ms // spec.period_ms
        limit = origin + spec.duration_ms + 1 if end is None else end
        k = np.arange(max(0, (start - origin) // period - 1), min(ticks, (limit - origin) // period + 1))
        salt = np.uint64((spec.seed * 1_000_003 + n) % 2**63) << np.uint64(32)
        u = (_mix(k.astype(np.uint64) + salt) >> np.uint64(11)).astype(np.float64) / 2.0**53
        late = np.minimum(np.floor(-MEAN_LATENESS_MS * np.log1p(-u)), period // 2).astype(np.int64)
        t = origin + k * period + late
        final = origin + spec.duration_ms
        t = np.append(t, final)
        return t[(t >= start) & (t < limit)]

    def _node(self, n: int, start: int, end: int | None) -> tuple[GpuSamples, ...]:
        t = self._ticks(n, start, end)
        gpus, g = self.gpus[n], self.spec.gpus_per_node
        if t.size == 0:
            empty = np.zeros(0, np.int64)
            return tuple(GpuSamples(empty, empty, empty, empty, empty, empty) for _ in range(g))
        rng = np.random.default_rng([self.spec.seed, n, start // self.spec.chunk_ms, 0xC4])
        util, activity, clocks_up = self._schedule(t, gpus, rng)
        base_w, clock = self._power(t, util, activity, clocks_up, gpus)
        temp = self._temperature(t, base_w, gpus)
        power_w = base_w + LEAKAGE_W_PER_C * (temp - 35.0)
        power_w += rng.normal(0.0, 1.0, power_w.shape) * np.where(clocks_up, 6.0, 1.5)
        power_w = self._spikes(power_w, rng)
        power_mw = np.clip(np.round(power_w * MILLIWATTS_PER_W), 0, None).astype(np.int64)
        energy_mj = self._counter(n, t, power_mw, gpus)
        util_pct = np.clip(np.round(util * 100 + rng.normal(0, 1.5, util.shape) * (util > 0)), 0, 100)
        return tuple(
            GpuSamples(t, energy_mj[i], power_mw[i], clock[i].astype(np.int64), util_pct[i].astype(np.int64),
                       np.round(temp[i]).astype(np.int64))
            for i in range(g)
        )

    def _schedule(
        self, t: np.ndarray, gpus: _GpuState, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Utilisation, switching activity and whether clocks are up, per GPU and reading: (G, n) each."""
        r = (t - self.spec.start_ms).astype(np.float64)
        loading = r < self.loading_ms
        trained = r - self.loading_ms
        evaluating = ~loading & (trained % self.eval_every_ms >= self.eval_every_ms - self.eval_ms)
        checkpoint = ~loading & ~evaluating & (trained % self.ckpt_every_ms >= self.ckpt_every_ms - self.ckpt_ms)
        # Data-loader stalls: the GPUs wait, clocks up, a few hundred ms every half minute or so.
        stalled = np.zeros(t.size, bool)
        for at in rng.uniform(t[0], t[-1] + 1, rng.poisson((t[-1] - t[0]) / 30_000)):
            stalled[np.searchsorted(t, at):np.searchsorted(t, at + rng.uniform(200, 800))] = True
        phase = ((trained[None, :] + gpus.lag_ms[:, None]) / self.step_ms) % 1.0
        ends = [p[0] for p in STEP_PHASES]
        which = np.searchsorted(ends, phase, side="right").clip(0, len(STEP_PHASES) - 1)
        util = np.array([p[1] for p in STEP_PHASES])[which] + rng.normal(0, 0.02, phase.shape)
        activity = np.array([p[2] for p in STEP_PHASES])[which] * rng.uniform(0.95, 1.05, phase.shape)
        util = np.where(evaluating, 0.6, util)
        activity = np.where(evaluating, 0.6, activity)
        idle = loading | checkpoint | stalled
        util = np.where(idle, 0.0, util.clip(0.0, 1.0))
        activity = np.where(idle, 0.0, activity)
        clocks_up = np.broadcast_to(~(loading | checkpoint), util.shape)
        return util, activity, clocks_up

    def _power(
        self, t: np.ndarray, util: np.ndarray, activity: np.ndarray, clocks_up: np.ndarray, gpus: _GpuState
    ) -> tuple[np.ndarray, np.ndarray]:
        """Power without leakage and the SM clock: the clock drops in 15 MHz steps when over the cap."""
        amplitude, period, phase = (gpus.drift[:, i:i + 1] for i in range(3))
        drift = 1.0 + amplitude * np.sin(2 * math.pi * t[None, :] / period + phase)
        dynamic = gpus.dynamic_w[:, None] * drift * activity * util
        # The power controller sees leakage too: leave room for it at the temperature full load settles at.
        hot_c = np.maximum(gpus.temp_c, gpus.ambient_c + THERMAL_C_PER_W * POWER_CAP_W)
        fixed = (gpus.idle_w + gpus.clock_idle_w + LEAKAGE_W_PER_C * (hot_c - 35.0))[:, None]
        cap = float(self.spec.clock_cap_mhz)
        with np.errstate(divide="ignore", invalid="ignore"):
            fits = np.where(dynamic > 0, ((POWER_CAP_W - fixed) / dynamic) ** 0.4 * MAX_CLOCK_MHZ, cap)
        clock = np.minimum(cap, np.floor(fits / CLOCK_STEP_MHZ) * CLOCK_STEP_MHZ)
        power = fixed + dynamic * (clock / MAX_CLOCK_MHZ) ** 2.5
        power -= LEAKAGE_W_PER_C * (hot_c - 35.0)[:, None]
        return (np.where(clocks_up, power, gpus.idle_w[:, None]),
                np.where(clocks_up, clock, IDLE_CLOCK_MHZ).astype(np.int64))

    def _spikes(self, power_w: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """A few short excursions to the cap per GPU and hour (one to three readings each)."""
        g, n = power_w.shape
        count = rng.poisson(3 * n / 36_000 * g)
        rows, cols = rng.integers(0, g, count), rng.integers(0, n, count)
        for i, j, width in zip(rows, cols, rng.integers(1, 4, count), strict=True):
            power_w[i, j:j + width] = rng.uniform(690, POWER_CAP_W)
        return power_w

    def _temperature(self, t: np.ndarray, power_w: np.ndarray, gpus: _GpuState) -> np.ndarray:
        """First-order thermal lag, stepped on 10 s block means and drawn linearly between block ends."""
        block = (t - t[0]) // 10_000
        keys, starts = np.unique(block, return_index=True)
        counts = np.diff(np.append(starts, t.size))
        means = np.add.reduceat(power_w, starts, axis=1) / counts
        ends = np.append(t[starts[1:] - 1], t[-1]).astype(np.float64)
        level = np.empty((power_w.shape[0], keys.size))
        temp, last = gpus.temp_c.copy(), float(t[0]) if gpus.last_t is None else float(gpus.last_t)
        for b in range(keys.size):
            target = gpus.ambient_c + THERMAL_C_PER_W * means[:, b]
            temp += (target - temp) * (1.0 - math.exp(-(ends[b] - last) / THERMAL_TIME_CONSTANT_MS))
            level[:, b], last = temp, ends[b]
        gpus.temp_c = temp
        return np.stack([np.interp(t, ends, level[i]) for i in range(level.shape[0])])

    def _counter(self, n: int, t: np.ndarray, power_mw: np.ndarray, gpus: _GpuState) -> np.ndarray:
        """The cumulative counter in mJ: the exact integral of reported power (mW × ms = µJ), floored."""
        previous = t[0] - self.spec.period_ms if gpus.last_t is None else gpus.last_t
        dt = np.diff(np.concatenate(([previous], t)))
        counted = gpus.counter_uj[:, None] + np.cumsum(power_mw * dt[None, :], axis=1)
        reset = self.spec.reset
        if reset is not None and reset[0] == n:
            at = self.spec.start_ms + reset[2]
            first_after = int(np.searchsorted(t, at, side="right"))
            if previous <= at and first_after < t.size:
                # The driver reloads just after the reading at or before `at`: from there it counts from zero.
                before = counted[reset[1], first_after - 1] if first_after else gpus.counter_uj[reset[1]]
                counted[reset[1], first_after:] -= before
        gpus.counter_uj = counted[:, -1].copy()
        gpus.last_t = int(t[-1])
        return counted // 1000
