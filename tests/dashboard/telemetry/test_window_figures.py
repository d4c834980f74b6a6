"""Windows' figures computed a block at a time are each window's own, bit for bit.

``dashboard.telemetry.window_figures`` stacks the windows a batch or a group brings into 2-D arrays. The oracle
here takes one window at a time: the counter rule step by step in plain Python (``counter_step_mj`` and the
plausibility bound), and numpy's float sums on the window's own 1-D arrays, as ingest computed them before.
"""

from __future__ import annotations

import numpy as np
from django.test import override_settings
from hypothesis import given, settings
from hypothesis import strategies as st

from dashboard.telemetry.window_figures import MINUTE_FOLDS, minute_rows, window_stats
from planner.units import MS_PER_MINUTE
from wattwise_agent import wire
from wattwise_agent.wire_energy import INTERVAL_SLACK_MS, POWER_MARGIN, counter_step_mj

CEILING_W = 900.0


@st.composite
def windows(draw: st.DrawFn) -> list[wire.GpuWindow]:
    """Windows of a few lengths (numpy sums pairwise in blocks above 128), with and without a previous reading,
    across minute boundaries now and then, with counter resets, wraps and jumps no device could make. The
    readings come from a drawn seed: long windows stay quick to draw."""
    out = []
    for k in range(draw(st.integers(1, 12))):
        n = draw(st.sampled_from([1, 2, 5, 50, 129, 1000]))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        start_ms = draw(st.integers(5_000, 3 * MS_PER_MINUTE))
        t_ms = start_ms + np.concatenate(([0], np.cumsum(rng.integers(1, 20_000, n - 1))))
        energy = [int(rng.integers(0, 10**9))]
        for kind in rng.choice(["forwards", "reset", "jump"], size=n - 1, p=[0.9, 0.05, 0.05]).tolist():
            energy.append({"forwards": energy[-1] + int(rng.integers(0, 5_000_000)),  # now and then implausibly far
                           "reset": int(rng.integers(0, 1000)),
                           "jump": (energy[-1] + 2**62) % wire.ENERGY_MODULUS_MJ}[kind])
        prev = draw(st.one_of(st.none(), st.tuples(st.integers(1, 5_000), st.integers(0, 10**9))))
        out.append(wire.GpuWindow.model_validate(wire.gpu_payload(
            uuid=f"GPU-{k}", index=k, name="", energy_source=wire.ENERGY_COUNTER, power_field=wire.POWER_INSTANT,
            prev=None if prev is None else (start_ms - prev[0], prev[1]),
            power_limit_mw=draw(st.one_of(st.none(), st.integers(100_000, 700_000))),
            columns={"t_ms": t_ms.tolist(), "energy_mj": energy,
                     "power_mw": rng.integers(0, 2**31 - 1, n, endpoint=True).tolist(),
                     "sm_clock_mhz": rng.integers(0, 2000, n, endpoint=True).tolist(), "util_pct": rng.integers(0, 100, n, endpoint=True).tolist(),
                     "temp_c": rng.integers(-40, 120, n, endpoint=True).tolist()},
        )))
    return out


def counted_alone(gpu: wire.GpuWindow) -> tuple[list[int], list[tuple[int, int]]]:
    """The window's deltas and its implausible intervals (end time, counted), one interval at a time."""
    times, readings = gpu.t_ms.tolist(), gpu.energy_mj.tolist()
    if gpu.prev_t_ms is not None and gpu.prev_energy_mj is not None:
        times, readings = [gpu.prev_t_ms, *times], [gpu.prev_energy_mj, *readings]
        deltas = []
    else:
        deltas = [0]
    limit_w = CEILING_W if gpu.power_limit_mw is None else gpu.power_limit_mw / 1000
    implausible = []
    for i in range(1, len(readings)):
        step = counter_step_mj(readings[i - 1], readings[i])
        if step > POWER_MARGIN * limit_w * (times[i] - times[i - 1] + INTERVAL_SLACK_MS):
            implausible.append((times[i], step))
            step = 0
        deltas.append(step)
    return deltas, implausible


@override_settings(WATTWISE_MAX_GPU_POWER_W=CEILING_W)
@settings(max_examples=80, deadline=None)
@given(windows())
def test_each_windows_figures_are_what_it_gives_alone(gpus: list[wire.GpuWindow]) -> None:
    for gpu, stats in zip(gpus, window_stats(gpus), strict=True):
        deltas, implausible = counted_alone(gpu)
        assert stats.deltas_mj.dtype == np.int64 and stats.deltas_mj.tolist() == deltas
        assert [(i.t_ms, i.counted_mj) for i in stats.implausible] == implausible
        power_w = gpu.power_mw / 1000
        assert stats.energy_j == float(sum(deltas)) / 1000
        assert (stats.power_sum_w, stats.peak_power_w) == (float(power_w.sum()), float(power_w.max()))


@override_settings(WATTWISE_MAX_GPU_POWER_W=CEILING_W)
@settings(max_examples=80, deadline=None)
@given(windows())
def test_each_windows_minute_rows_are_what_it_gives_alone(gpus: list[wire.GpuWindow]) -> None:
    stats = window_stats(gpus)
    expected = []
    for k, (gpu, s) in enumerate(zip(gpus, stats, strict=True)):
        minute = gpu.t_ms // MS_PER_MINUTE * MS_PER_MINUTE
        for key in sorted(set(minute.tolist())):
            part = minute == key
            deltas, power_w = s.deltas_mj[part], gpu.power_mw[part] / 1000
            expected.append([
                k, key, int(part.sum()), float(sum(deltas.tolist())) / 1000, float(np.add.reduceat(power_w, [0])[0]),
                float(power_w.min()), float(power_w.max()),
                *(float(fold.reduce(getattr(gpu, reading)[part].tolist())) for _, reading, fold in MINUTE_FOLDS),
            ])
    assert minute_rows([(gpu, k, s) for k, (gpu, s) in enumerate(zip(gpus, stats, strict=True))]) == expected
