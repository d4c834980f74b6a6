"""What the run and GPU pages draw, as plain data: the same function feeds the page and its live updates.

The cards always show whole-run totals (sums of counter differences). The charts show the picked time
range; when that is not the whole run, the energy charts count only the energy inside it and say so.
A run's CPU packages and DRAM (RAPL) are devices beside its GPUs: the GPU table, the power chart and the
energy-per-GPU chart show GPUs only; the per-node and cumulative charts and the totals count every device.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from django.utils.safestring import SafeString

from dashboard.runs import charts, series
from dashboard.runs.downsample import Buckets
from dashboard.runs.plan_intervals import PlanInterval, plan_intervals
from dashboard.runs.ranges import ALL, CUSTOM, RangeChoice
from dashboard.runs.summaries import RunFigures, run_figures
from dashboard.telemetry.models import DEVICE_ORDER, Gpu, Run, RunGpu
from dashboard.telemetry.windows import TimeRange
from dashboard.web.figures import figure_json

# A GPU page's charts are about 550 px wide: more buckets than this turn a noisy trace into a solid band.
GPU_PAGE_POINTS = 600


def gpu_label(run_gpu: RunGpu) -> str:
    """``node/gpu0``; a CPU package or its DRAM: ``node/cpu0``, ``node/dram0``."""
    return f"{run_gpu.gpu.node.name}/{run_gpu.gpu.component}{run_gpu.gpu.index}"


@dataclass(frozen=True)
class Drawn:
    """The charts of one page for the range picked: (div id, figure JSON) in page order."""

    choice: RangeChoice
    span: TimeRange | None  # the drawn stretch; None before any sample
    plots: list[tuple[str, SafeString]] = field(default_factory=list)
    range_energy_j: float | None = None  # energy inside the range, when it is not the whole run

    @property
    def empty(self) -> bool:
        return not self.plots

    @property
    def export_query(self) -> str:
        """Query string selecting the drawn stretch in the CSV export ('to' is exclusive there)."""
        if self.choice.key == ALL or self.span is None or self.span.empty:
            return ""
        return f"from={self.span.from_ms}&to={self.span.to_ms + 1}"


def _drawn_span(choice: RangeChoice, data: TimeRange | None, *, live: bool, now_ms: int) -> TimeRange | None:
    return None if data is None else choice.resolve(data, live=live, now_ms=now_ms)


def _suffix(choice: RangeChoice) -> str:
    """What chart titles add when they count only the picked range: "(last hour)", or "(range)"."""
    if choice.key == ALL:
        return ""
    return " (range)" if choice.key == CUSTOM else f" ({choice.label.lower()})"


@dataclass(frozen=True)
class RunPage:
    run: Run
    figures: RunFigures
    run_gpus: list[RunGpu]  # the GPUs
    drawn: Drawn
    node_devices: list[RunGpu] = field(default_factory=list)  # CPU packages and DRAM, where read
    plans: list[PlanInterval] = field(default_factory=list)  # frequency plans in force (plan client events)
    plans_cut: bool = False  # more plan events than were read


def run_page(run: Run, choice: RangeChoice, *, now_ms: int) -> RunPage:
    devices = list(RunGpu.objects.filter(run=run).select_related("gpu__node").order_by(*DEVICE_ORDER))
    figures = run_figures(run, devices)
    run_gpus = [rg for rg in devices if rg.gpu.component == Gpu.Component.GPU]
    others = [rg for rg in devices if rg.gpu.component != Gpu.Component.GPU]
    live = run.status == Run.Status.RUNNING
    span = _drawn_span(choice, series.span_of(devices), live=live, now_ms=now_ms)
    plans, cut = plan_intervals(run.pk)
    drawn = Drawn(choice, span)
    if span is None or span.empty:
        return RunPage(run, figures, run_gpus, drawn, others, plans, cut)
    # Many GPUs overlaid read better at a coarser resolution; the GPU page draws the full detail.
    points = max(200, settings.WATTWISE_CHART_POINTS // max(len(devices), 1))
    buckets = series.gpu_buckets([rg.pk for rg in devices], span, ("power_w",), points=points)
    if not buckets:
        return RunPage(run, figures, run_gpus, drawn, others, plans, cut)
    whole = choice.key == ALL
    # Over the whole run the bars show the stored totals; over a range, the energy counted inside it.
    energy_j = {rg.pk: rg.energy_j if whole else float(np.sum(buckets[rg.pk].energy_j)) if rg.pk in buckets else 0.0
                for rg in devices}
    suffix = _suffix(choice)
    plots = []
    if run_gpus:
        power = {gpu_label(rg): buckets[rg.pk].metrics["power_w"] if rg.pk in buckets else Buckets.empty()
                 for rg in run_gpus}
        power_field = run_gpus[0].gpu.power_field
        # Each plan's interval, clipped to the drawn span (one still in force lasts to its end).
        bands = [(max(p.from_ms, span.from_ms), min(p.to_ms if p.to_ms is not None else span.to_ms, span.to_ms),
                  p.label) for p in plans if p.from_ms <= span.to_ms and (p.to_ms is None or p.to_ms >= span.from_ms)]
        from_windows = any(b.from_windows for b in buckets.values())
        plots.append(("chart-power", figure_json(charts.power_over_time(power, power_field=power_field,
                                                                        plans=bands, from_windows=from_windows))))
        plots.append(("chart-energy-per-gpu", figure_json(charts.energy_per_gpu(
            [gpu_label(rg) for rg in run_gpus], [energy_j[rg.pk] for rg in run_gpus],
            [rg.gpu.node.name for rg in run_gpus], title="Energy per GPU" + suffix,
        ))))
    by_node: dict[str, dict[str, float]] = {}
    for rg in devices:
        by_node.setdefault(rg.gpu.node.name, {})[f"{rg.gpu.component}{rg.gpu.index}"] = energy_j[rg.pk]
    title = "Energy per node, by " + ("device" if others else "GPU")
    plots.append(("chart-nodes", figure_json(charts.node_breakdown(by_node, title=title + suffix))))
    times: dict[str, list[np.ndarray]] = {}
    energies: dict[str, list[np.ndarray]] = {}
    for rg in devices:
        if rg.pk in buckets:
            times.setdefault(rg.gpu.node.name, []).append(buckets[rg.pk].energy_t_ms)
            energies.setdefault(rg.gpu.node.name, []).append(buckets[rg.pk].energy_j)
    axis, curves = series.cumulative(span.from_ms, times, energies)
    plots.append(("chart-cumulative", figure_json(charts.cumulative_energy(
        axis, curves, title="Cumulative energy" + ("" if whole else " since the range start")))))
    in_range = None if whole else sum(energy_j.values())
    return RunPage(run, figures, run_gpus, Drawn(choice, span, plots, in_range), others, plans, cut)


@dataclass(frozen=True)
class GpuPage:
    run_gpu: RunGpu
    label: str
    drawn: Drawn


def gpu_page(run: Run, run_gpu: RunGpu, choice: RangeChoice, *, now_ms: int) -> GpuPage:
    span = _drawn_span(choice, series.span_of([run_gpu]), live=run.status == Run.Status.RUNNING, now_ms=now_ms)
    drawn = Drawn(choice, span)
    label = gpu_label(run_gpu)
    if span is None or span.empty:
        return GpuPage(run_gpu, label, drawn)
    found = series.gpu_buckets([run_gpu.pk], span, points=GPU_PAGE_POINTS).get(run_gpu.pk)
    if found is None:
        return GpuPage(run_gpu, label, drawn)
    whole = choice.key == ALL
    data = found.metrics
    axis, curves = series.cumulative(span.from_ms, {"gpu": [found.energy_t_ms]}, {"gpu": [found.energy_j]})
    field_name = run_gpu.gpu.power_field
    is_gpu = run_gpu.gpu.component == Gpu.Component.GPU
    power_title = f"Power ({field_name} NVML power)" if is_gpu else "Power (mean between RAPL readings)"
    width = found.width_ms
    plots = [
        ("chart-power", figure_json(charts.metric_over_time(data["power_w"], title=power_title, unit="W",
                                                            width_ms=width))),
        ("chart-energy", figure_json(charts.cumulative_gpu_energy(
            axis, curves["gpu"], title="Cumulative energy" + ("" if whole else " since the range start")))),
    ]
    if is_gpu:  # RAPL has no clock, utilisation or temperature: the agent sends zeros
        plots += [
            ("chart-clock", figure_json(charts.metric_over_time(data["sm_clock_mhz"], title="SM clock",
                                                                unit="MHz", width_ms=width))),
            ("chart-util", figure_json(charts.metric_over_time(data["util_pct"], title="GPU utilisation",
                                                               unit="%", width_ms=width))),
            ("chart-temp", figure_json(charts.metric_over_time(data["temp_c"], title="Temperature", unit="°C",
                                                               width_ms=width))),
        ]
    in_range = None if whole else float(np.sum(found.energy_j))
    return GpuPage(run_gpu, label, Drawn(choice, span, plots, in_range))
