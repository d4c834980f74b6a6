"""Exports as plain functions: query parameters in, CSV rows out, one row at a time.

Every function here yields rows lazily and reads the database with ``.iterator()``, so a run of millions
of samples streams out in constant memory: at most one chunk of windows (``WINDOW_CHUNK`` rows of about
50 samples each) is held at once. Headers name their units (``power_w``, ``energy_j``, ``t_ms``) and
times are UTC, both as ISO 8601 text and as epoch milliseconds, so spreadsheets and pandas read them as
they are.

``csv_chunks`` turns a header and rows into text chunks for a ``StreamingHttpResponse``; the views in
``dashboard.runs.export_views`` only add the response around it.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
from django.db.models import QuerySet

from dashboard.runs.ranges import BadRange, parse_time_range
from dashboard.runs.samples import refuse_expired
from dashboard.runs.summaries import run_figures
from dashboard.telemetry import columns
from dashboard.telemetry.models import DEVICE_ORDER, GpuMinute, Run, RunGpu
from dashboard.telemetry.windows import ALL_TIME, TimeRange, one_snapshot, overlapping
from planner.carbon.figures import CarbonFigures, run_carbon
from planner.units import J_PER_KWH, MILLIJOULES_PER_J, MILLIWATTS_PER_W, MS_PER_HOUR, MS_PER_MINUTE, MS_PER_S

if TYPE_CHECKING:
    from dashboard.runs.summaries import RunWithTotals

log = logging.getLogger(__name__)

WINDOW_CHUNK = 500  # windows fetched per round trip: ~25,000 samples, ~150 kB of encoded columns
MINUTE_CHUNK = 5000
RESOLUTIONS = ("raw", "minute")

# ``component`` says what each device is: gpu, or cpu / dram (a CPU package or its DRAM, read through RAPL,
# whose clock, utilisation and temperature columns are 0). In the summary, ``scope`` says it.
SAMPLE_HEADER = [
    "time_utc", "t_ms", "node", "gpu_index", "gpu_uuid", "power_w", "energy_counter_j", "sm_clock_mhz",
    "util_pct", "temp_c", "component",
]
MINUTE_HEADER = [
    "minute_utc", "minute_ms", "node", "gpu_index", "gpu_uuid", "samples", "energy_j", "mean_power_w",
    "min_power_w", "max_power_w", "mean_sm_clock_mhz", "mean_util_pct", "max_temp_c", "component",
]
SUMMARY_HEADER = [
    "scope", "project", "run", "status", "node", "gpu_index", "gpu_uuid", "gpu_name", "first_sample_utc",
    "last_sample_utc", "duration_s", "gpu_hours", "samples", "energy_j", "energy_kwh", "mean_power_w",
    "peak_power_w", "estimated", "location_emissions_g", "market_emissions_g", "offset_basis",
    "offset_emissions_g", "offset_tonnes_to_retire", "offset_credits", "offset_cost", "offset_currency",
    "carbon_status",
]
RUNS_HEADER = [
    "run_id", "project", "run", "status", "simulated", "tags", "started_utc", "ended_utc", "first_sample_utc",
    "last_sample_utc", "gpus", "samples", "duration_s", "energy_j", "energy_kwh", "mean_power_w",
]


# A query parameter the export cannot use; the message says what was wrong and what is accepted. The
# pages' range parser raises the same error, so one message style serves both.
BadParameter = BadRange


# --- parameters ----------------------------------------------------------------------------------------


def parse_range(params: Mapping[str, str]) -> TimeRange:
    """``from`` and ``to``, both optional, selecting ``from <= t < to`` as documented: ``to`` is exclusive."""
    return parse_time_range(params, to_exclusive=True)


def parse_resolution(params: Mapping[str, str]) -> str:
    resolution = params.get("resolution", "").strip() or "raw"
    if resolution not in RESOLUTIONS:
        raise BadParameter(f"resolution={resolution[:40]!r}: expected one of {', '.join(RESOLUTIONS)}")
    return resolution


# --- formatting --------------------------------------------------------------------------------------------


def utc_text(t_ms: int) -> str:
    return datetime.fromtimestamp(t_ms / MS_PER_S, tz=UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _iso(when: datetime | None) -> str:
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z") if when else ""


def spreadsheet_safe(text: str) -> str:
    """Names come from agents and users: keep a spreadsheet from reading one as a formula."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def csv_chunks(header: Sequence[str], rows: Iterable[Sequence[Any]], chunk_chars: int = 64 * 1024) -> Iterator[str]:
    """CSV text in chunks of about ``chunk_chars``: a chunk per row would cost a socket write per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    try:
        for row in rows:
            writer.writerow(row)
            if buffer.tell() >= chunk_chars:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        yield buffer.getvalue()
    finally:
        # A download stopped half way closes the rows at once: the samples' generator ends its snapshot
        # (windows.one_snapshot) here, not whenever it is collected.
        close = getattr(rows, "close", None)
        if close is not None:
            close()


# --- samples ----------------------------------------------------------------------------------------------


def _run_gpus(run: Run) -> list[RunGpu]:
    return list(RunGpu.objects.filter(run=run).select_related("gpu__node").order_by(*DEVICE_ORDER))


def check_raw(run: Run, span: TimeRange) -> None:
    """Raise ``RawExpired`` when ``span`` asks for raw samples of the run that the raw retention dropped."""
    refuse_expired(_run_gpus(run), span, "resolution=minute (the per-minute rollups are kept)")


def sample_rows(run: Run, span: TimeRange = ALL_TIME) -> Iterator[tuple[Any, ...]]:
    """One row per stored sample (``SAMPLE_HEADER``) in ``span``, GPU by GPU, each in time order.

    Only the windows overlapping ``span`` are read (``dashboard.telemetry.windows.overlapping``: one range
    scan of the ``(run_gpu, first_ms)`` index). With several agent streams recording one GPU at once (a
    misconfiguration) their windows interleave by first reading, and every stored sample still appears
    exactly once.
    """
    for rg in _run_gpus(run):
        with one_snapshot():  # how far back to look, then the windows: one state of them, compacted or not
            yield from _gpu_sample_rows(rg, span)


def _gpu_sample_rows(rg: RunGpu, span: TimeRange) -> Iterator[tuple[Any, ...]]:
    node, index, uuid = spreadsheet_safe(rg.gpu.node.name), rg.gpu.index, spreadsheet_safe(rg.gpu.uuid)
    component = rg.gpu.component
    # first_ms alone, so the index delivers the order and a whole-run export needs no sort.
    windows = overlapping([rg.pk], span).order_by("first_ms").only("first_ms", "readings")
    for window in windows.iterator(chunk_size=WINDOW_CHUNK):
        arrays = columns.decode_window(window)
        keep = span.mask(arrays.t_ms)
        t_ms = arrays.t_ms[keep]
        if not t_ms.size:
            continue
        times = np.datetime_as_string(t_ms.astype("datetime64[ms]"), unit="ms", timezone="UTC")
        # tolist() turns numpy scalars into Python numbers in one pass, and into exact CSV text:
        # a reading of 299999 mW divided by 1000 prints as 299.999.
        for row in zip(
            times.tolist(), t_ms.tolist(),
            (arrays.power_mw[keep] / MILLIWATTS_PER_W).tolist(),
            (arrays.energy_mj[keep] / MILLIJOULES_PER_J).tolist(),
            arrays.sm_clock_mhz[keep].tolist(), arrays.util_pct[keep].tolist(), arrays.temp_c[keep].tolist(),
            strict=True,
        ):
            yield (row[0], row[1], node, index, uuid, *row[2:], component)


def minute_rows(run: Run, span: TimeRange = ALL_TIME) -> Iterator[tuple[Any, ...]]:
    """One row per GPU-minute rollup (``MINUTE_HEADER``) overlapping ``span``, GPU by GPU.

    A minute's energy is that of the intervals ending in it; the means are over its samples.
    """
    for rg in _run_gpus(run):
        node, index, uuid = spreadsheet_safe(rg.gpu.node.name), rg.gpu.index, spreadsheet_safe(rg.gpu.uuid)
        component = rg.gpu.component
        minutes = GpuMinute.objects.filter(
            run_gpu_id=rg.pk, minute_ms__gt=span.from_ms - MS_PER_MINUTE, minute_ms__lte=span.to_ms
        )
        rows = minutes.order_by("minute_ms").values_list(
            "minute_ms", "samples", "energy_j", "power_sum_w", "power_min_w", "power_max_w", "sm_clock_sum_mhz",
            "util_sum_pct", "temp_max_c",
        )
        for minute_ms, samples, energy_j, power_sum_w, power_min_w, power_max_w, clock_sum, util_sum, temp_max in (
            rows.iterator(chunk_size=MINUTE_CHUNK)
        ):
            n = max(samples, 1)
            yield (
                utc_text(minute_ms), minute_ms, node, index, uuid, samples, energy_j, round(power_sum_w / n, 6),
                power_min_w, power_max_w, round(clock_sum / n, 3), round(util_sum / n, 3), temp_max, component,
            )


# --- summaries -----------------------------------------------------------------------------------------------


def _carbon(run: Run) -> CarbonFigures | None:
    """The run's stored carbon figures with per-GPU figures and offset quote (read, never computed here).

    Carbon is an addition to the energy summary: if it cannot be read the export still answers, with the
    carbon columns empty, and the failure is logged.
    """
    try:
        return run_carbon(run, gpus=True)
    except Exception:
        log.exception("carbon figures of run %s could not be read for its summary export", run.pk)
        return None


def summary_rows(run: Run) -> list[tuple[Any, ...]]:
    """``SUMMARY_HEADER`` rows: one per device, then the run's total; the figures of ``summary.json``.

    A device's ``scope`` is its component: ``gpu``, or ``cpu`` / ``dram`` (RAPL; no GPU-hours). A device's
    ``mean_power_w`` is the mean of its samples; the total's is the run's energy (every component) over its
    wall-clock duration (the mean draw of all devices together), and its ``peak_power_w`` the highest GPU peak.
    Offsets are quoted for the whole run only. Carbon columns hold the stored figures; ``carbon_status``
    says whether they are current (``behind`` while a streaming run's recompute is due, ``stale`` when an
    input changed, ``pending`` before the first one).
    """
    figures = run_figures(run)
    carbon_figures = _carbon(run)
    stored = carbon_figures.totals if carbon_figures is not None else None
    gpu_carbon = carbon_figures.gpus if carbon_figures is not None else {}
    offset = carbon_figures.offset if carbon_figures is not None else None
    status = carbon_figures.state.value if carbon_figures is not None else ""
    project, name = spreadsheet_safe(run.project.name), spreadsheet_safe(run.name)
    rows: list[tuple[Any, ...]] = []
    for g in figures.devices:
        carbon = gpu_carbon.get(g.run_gpu_id)
        rows.append((
            g.component, project, name, run.status, spreadsheet_safe(g.node), g.index, spreadsheet_safe(g.uuid),
            spreadsheet_safe(g.name), utc_text(g.first_ms), utc_text(g.last_ms), (g.last_ms - g.first_ms) / MS_PER_S,
            (g.last_ms - g.first_ms) / MS_PER_HOUR if g.is_gpu else "", g.samples, g.energy_j, g.energy_j / J_PER_KWH, g.mean_power_w,
            g.peak_power_w, g.estimated,
            carbon.emissions_g if carbon else "", carbon.market_emissions_g if carbon else "",
            "", "", "", "", "", "", status,
        ))
    quote = offset.quote if offset else None
    rows.append((
        "total", project, name, run.status, "", "", "", "",
        utc_text(min(g.first_ms for g in figures.devices)) if figures.devices else "",
        utc_text(max(g.last_ms for g in figures.devices)) if figures.devices else "",
        figures.duration_s, figures.gpu_hours, figures.samples, figures.energy_j, figures.energy_kwh,
        figures.mean_power_w, figures.peak_gpu_power_w, figures.estimated,
        stored.emissions_g if stored else "", stored.market_emissions_g if stored else "",
        offset.basis if offset else "", offset.emissions_g if offset else "",
        quote.tonnes_to_retire if quote else "", quote.credits if quote else "", quote.cost if quote else "",
        quote.currency if quote else "", status,
    ))
    return rows


def run_list_rows(runs: QuerySet[RunWithTotals]) -> Iterator[tuple[Any, ...]]:
    """``RUNS_HEADER`` rows for runs annotated by ``dashboard.runs.summaries.with_totals``, in their order."""
    for run in runs.iterator(chunk_size=1000):
        energy_j = run.energy_j or 0.0
        first_ms, last_ms = run.first_ms, run.last_ms
        yield (
            run.pk, spreadsheet_safe(run.project.name), spreadsheet_safe(run.name), run.status, run.simulated,
            spreadsheet_safe(";".join(t.name for t in run.tags.all())), _iso(run.started_at), _iso(run.ended_at),
            utc_text(first_ms) if first_ms is not None else "", utc_text(last_ms) if last_ms is not None else "",
            run.gpu_count, run.samples or 0, run.duration_s if run.duration_s is not None else "",
            energy_j, energy_j / J_PER_KWH,
            run.mean_power_w if run.mean_power_w is not None else "",
        )
