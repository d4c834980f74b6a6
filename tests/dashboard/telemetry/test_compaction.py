"""Compaction (``dashboard.telemetry.compaction``) rewrites a stream's consecutive windows of a GPU as one row per
chunk of time, and every figure read afterwards is the one read before: series at every resolution (from the
windows' own figures and from the samples), the compare page's series, sample pages, CSV exports and totals.
A gap is never joined over, a batch that arrives late into it is stored as it would have been, and GPUs read by
several streams are left alone."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from dashboard.runs import compare_series, exports, samples, series
from dashboard.telemetry import compaction, ingest, tasks
from dashboard.telemetry.models import GpuMinute, Run, RunGpu, SampleWindow
from dashboard.telemetry.windows import TimeRange
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db

CHUNK_MS = 60_000
READINGS = 50  # 5 s windows at 10 Hz
FAR_FUTURE_MS = T0_MS + 10**9
MINUTE_FIELDS = [f.name for f in GpuMinute._meta.concrete_fields if f.name not in ("id", "run_gpu")]


class Stream:
    """An agent stream's batches of two GPUs, readings 100 ms apart, power drawn at random."""

    def __init__(self, name: str, start_ms: int, seed: int, run: str = "run-1") -> None:
        self.name, self.start_ms, self.run = name, start_ms, run
        self.rng = random.Random(seed)
        self.counter = {"GPU-1": 5_000_000, "GPU-2": 9_000_000}
        self.last: dict[str, tuple[int, int]] = {}
        self.next_t_ms = start_ms

    def batch(self, node: Any, seq: int, readings: int = READINGS) -> dict[str, Any]:
        entries = []
        times = [self.next_t_ms + i * 100 for i in range(readings)]
        self.next_t_ms += readings * 100
        for index, uuid in enumerate(("GPU-1", "GPU-2")):
            energy, power = [], []
            for _ in times:
                power_mw = self.rng.randrange(150_000, 650_000)
                self.counter[uuid] += power_mw // 10  # 100 ms at that power, in mJ
                energy.append(self.counter[uuid])
                power.append(power_mw)
            entries.append(gpu_entry(uuid, times, energy, index=index, power_mw=power, prev=self.last.get(uuid)))
            self.last[uuid] = (times[-1], energy[-1])
        return envelope(node, batch_payload(entries, run=self.run, stream=self.name, seq=seq))


def send(message: dict[str, Any]) -> None:
    assert ingest.ingest_batch(message).status == "stored"


def send_stream(*, seed: int, batches: int, start_ms: int = T0_MS) -> None:
    """A node's stream s1 of ``batches`` full windows from ``start_ms``, all stored."""
    node, stream = register(), Stream("s1", start_ms, seed=seed)
    for seq in range(batches):
        send(stream.batch(node, seq))


def arrays(value: Any) -> Any:
    """Figures as plain Python values, to compare with ==."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: arrays(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [arrays(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: arrays(getattr(value, name)) for name in value.__dataclass_fields__}
    return value


def figures(run: Run) -> dict[str, Any]:
    gpus = list(RunGpu.objects.filter(run=run).order_by("gpu__index"))
    ids = [g.pk for g in gpus]
    index = {g.pk: g.gpu.index for g in gpus}  # figures by GPU, not by row id, to compare two runs
    span = series.span_of(gpus)
    assert span is not None
    middle = TimeRange(span.from_ms + 37_000, span.from_ms + 131_000)
    out: dict[str, Any] = {
        "totals": [(g.energy_j, g.samples, g.first_ms, g.last_ms, g.power_sum_w, g.peak_power_w) for g in gpus],
        "minutes": list(GpuMinute.objects.filter(run_gpu__run=run).order_by("run_gpu__gpu__index", "minute_ms")
                        .values_list(*MINUTE_FIELDS)),
        "samples csv": list(exports.sample_rows(run)),
        "samples csv, a range": list(exports.sample_rows(run, middle)),
    }
    for points in (10, 40, 400, 4_000):
        for where, within in (("all", span), ("middle", middle)):
            for name, metrics in (("power", ("power_w",)), ("all metrics", series.METRICS)):
                found = series.gpu_buckets(ids, within, metrics, points=points)
                out[f"{name}, {points} points, {where}"] = {index[k]: arrays(v) for k, v in found.items()}
    for g in gpus:
        pages, after = [], None
        while True:
            page = samples.read_page(g, None, None, limit=333, after=after)
            pages.append(arrays(page.columns))
            if page.next_cursor is None:
                break
            after = page.next_cursor
        out[f"sample pages, GPU {g.gpu.index}"] = pages
    return out


def compare_figures(run: Run) -> list[Any]:
    span = series.span_of(RunGpu.objects.filter(run=run))
    return [arrays(s) for s in compare_series.read_series(
        [compare_series.RunReadings(run.pk, span)], compare_series.Plan("windows", 5_000))]


def assert_close(before: Any, after: Any) -> None:
    """Equal, floats to 1e-9 relative (the compare page sums a bucket's windows in another order)."""
    if isinstance(before, dict):
        assert before.keys() == after.keys()
        for key in before:
            assert_close(before[key], after[key])
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after)
        for b, a in zip(before, after, strict=True):
            assert_close(b, a)
    elif isinstance(before, float):
        assert after == pytest.approx(before, rel=1e-9, abs=1e-9, nan_ok=True)
    else:
        assert before == after


def compact() -> compaction.Compacted:
    return compaction.compact(FAR_FUTURE_MS, CHUNK_MS)


def test_every_figure_is_the_same_after_compaction_and_the_rows_are_fewer():
    node = register()
    # One stream from start to end (its power charts drawn from the windows' own figures), and one whose agent
    # restarts: a new stream, its first window with no previous reading (charts drawn from the samples).
    steady = Stream("steady", T0_MS + 2_300, seed=1, run="steady")
    first = Stream("s1", T0_MS + 2_300, seed=2, run="restarted")
    second = Stream("s2", T0_MS + 2_300 + 40 * 5_000 + 700, seed=3, run="restarted")
    for seq in range(49):
        send(steady.batch(node, seq))
        send(first.batch(node, seq) if seq < 40 else second.batch(node, seq - 40))
    runs = list(Run.objects.order_by("name"))  # restarted, steady
    before, compared = [figures(run) for run in runs], [compare_figures(run) for run in runs]
    drawn_from_windows = [{b["from_windows"] for b in f["power, 40 points, all"].values()} for f in before]
    assert drawn_from_windows == [{False}, {True}]
    rows_before = SampleWindow.objects.count()

    done = compact()

    assert done.rows == SampleWindow.objects.exclude(parts=None).count()
    assert SampleWindow.objects.count() == rows_before - done.windows + done.rows < rows_before / 5
    for run, figures_before, compared_before in zip(runs, before, compared, strict=True):
        # The power charts of the steady run from the windows' own figures: sums in another order.
        assert_close(figures_before, figures(run))
        assert_close(compared_before, compare_figures(run))
    # Read from the samples: the same numbers, bit for bit.
    assert figures(runs[0]) == before[0]
    # A second pass finds nothing more to do.
    assert compact().windows == 0


def test_windows_of_any_length_even_one_reading_give_the_same_figures_after_compaction():
    node = register()
    stream = Stream("s1", T0_MS + 700, seed=10)
    lengths = [1, 1, 50, 7, 1, 60, 33, 1, 2, 50, 1, 45, 1, 1, 58, 12, 1, 50, 50, 3]
    for seq, readings in enumerate(lengths * 3):
        send(stream.batch(node, seq, readings))
    run = Run.objects.get()
    gpus = list(RunGpu.objects.filter(run=run))
    # A span that ends between a one-reading window's previous reading and its own: the window's midpoint is
    # in the span, the window is not.
    one = SampleWindow.objects.filter(samples=1, seq__gt=40).order_by("first_ms").first()
    cut = TimeRange(gpus[0].first_ms, one.first_ms - 30)

    def cut_power() -> Any:
        return {g.gpu.index: arrays(b) for g in gpus
                for k, b in series.gpu_buckets([g.pk], cut, ("power_w",), points=10).items()}

    before, compared, cut_before = figures(run), compare_figures(run), cut_power()
    assert {b["from_windows"] for b in before["power, 10 points, all"].values()} == {True}
    assert {b["from_windows"] for b in cut_before.values()} == {True}

    assert compact().rows > 2

    assert_close(before, figures(run))
    assert_close(compared, compare_figures(run))
    assert_close(cut_before, cut_power())


def test_a_gap_is_not_joined_over_and_the_batch_that_fills_it_late_is_stored_as_it_would_have_been():
    node = register()
    stream, reference = Stream("s1", T0_MS, seed=3), Stream("s-reference", T0_MS, seed=3, run="reference")
    late = None
    for seq in range(30):
        message, same = stream.batch(node, seq), reference.batch(node, seq)
        send(same)
        if seq == 13:
            late = message  # lost on the way, resent after compaction
        else:
            send(message)
    run, reference_run = Run.objects.get(name="run-1"), Run.objects.get(name="reference")

    compact()
    joined = compaction.decode_parts(SampleWindow.objects.filter(run_gpu__run=run).exclude(parts=None)
                                     .order_by("first_ms").values_list("parts", flat=True)[1])
    assert all(seq != 13 for seq in joined["seq"])
    assert late is not None
    send(late)

    # The late batch's energy was added last: the sums agree to rounding.
    assert_close(figures(reference_run), figures(run))


def test_gpus_read_by_several_streams_are_left_as_they_are():
    node = register()
    one, other = Stream("s1", T0_MS, seed=4), Stream("s2", T0_MS + 1_000, seed=5)
    for seq in range(20):
        send(one.batch(node, seq))
        send(other.batch(node, seq))
    assert RunGpu.objects.filter(shared=True).count() == 2
    rows = SampleWindow.objects.count()

    assert compact().windows == 0
    assert SampleWindow.objects.count() == rows


def test_only_chunks_closed_before_the_horizon_are_compacted_and_the_command_says_what_it_did(capsys, settings):
    settings.WATTWISE_COMPACT_CHUNK_S = CHUNK_MS // 1000
    send_stream(seed=6, batches=36)  # three minutes

    call_command("compact_windows", "--before-ms", str(T0_MS + 2 * CHUNK_MS + 30_000))
    assert "compacted 48 windows into 4 rows" in capsys.readouterr().out  # two GPUs' two closed minutes
    later = SampleWindow.objects.filter(first_ms__gte=T0_MS + 2 * CHUNK_MS)
    assert later.count() == 24 and not later.exclude(parts=None).exists()
    assert set(RunGpu.objects.values_list("compacted_ms", flat=True)) == {T0_MS + 2 * CHUNK_MS}
    assert set(RunGpu.objects.values_list("max_window_ms", flat=True)) == {CHUNK_MS}

    # The beat task, an hour after: the last minute too.
    assert tasks.compact_windows() == {"gpus": 2, "windows": 24, "rows": 2, "samples": 1_200, "more": False}
    assert not SampleWindow.objects.filter(parts=None).exists()


def test_a_long_history_is_compacted_a_stretch_a_pass_until_none_is_left(capsys, settings, monkeypatch):
    settings.WATTWISE_COMPACT_CHUNK_S = CHUNK_MS // 1000
    monkeypatch.setattr(compaction, "STEP_MS", CHUNK_MS)  # a minute a pass instead of a day
    send_stream(seed=7, batches=36)  # three minutes

    call_command("compact_windows", "--before-ms", str(FAR_FUTURE_MS))

    out = capsys.readouterr().out
    assert "compacted 72 windows into 6 rows in 3 passes" in out, out
    assert not SampleWindow.objects.filter(parts=None).exists()


def test_a_pass_whose_windows_another_pass_took_meanwhile_keeps_nothing_of_its_own(monkeypatch):
    send_stream(seed=8, batches=24)
    rows = SampleWindow.objects.count()
    own = compaction._delete
    raced: list[compaction.Compacted] = []

    def after_another_pass(*args):
        if not raced:  # another pass joins the same windows between this one's reading and deleting them
            monkeypatch.setattr(compaction, "_delete", own)
            raced.append(compaction.compact(FAR_FUTURE_MS, CHUNK_MS))
        return own(*args)

    monkeypatch.setattr(compaction, "_delete", after_another_pass)
    done = compact()

    # The first GPU's pass is undone (here with the other pass's work inside it: one connection), so no reading
    # is stored twice; the second GPU is compacted, and the next pass compacts the first.
    assert (raced[0].rows, done.rows, done.more) == (4, 2, True)
    assert sum(SampleWindow.objects.values_list("samples", flat=True)) == 24 * 2 * READINGS
    assert SampleWindow.objects.count() == rows // 2 + 2
    assert compact().rows == 2 and SampleWindow.objects.count() == 4


def test_the_beat_task_goes_on_past_its_bound_of_gpus_a_pass_until_none_is_left(settings):
    settings.WATTWISE_COMPACT_CHUNK_S = CHUNK_MS // 1000
    send_stream(seed=9, batches=12)

    done = compaction.compact_closed(FAR_FUTURE_MS, max_gpus=1)

    assert (done.gpus, done.rows, done.more) == (2, 2, False)
    assert not SampleWindow.objects.filter(parts=None).exists()


@pytest.mark.parametrize(("limit", "before_ms"), [
    (333, FAR_FUTURE_MS),
    # The first page ends at 61.0 s, in the window from 57.3 s to 62.2 s, which the first minute's row takes.
    (588, T0_MS + CHUNK_MS),
])
def test_a_client_paging_through_samples_while_they_are_compacted_reads_each_once(limit, before_ms):
    send_stream(seed=11, batches=30, start_ms=T0_MS + 2_300)
    gpu = RunGpu.objects.get(gpu__index=0)
    every = samples.read_page(gpu, None, None, limit=10_000).columns["t_ms"].tolist()

    read, after, pages = [], None, 0
    while True:
        page = samples.read_page(RunGpu.objects.get(pk=gpu.pk), None, None, limit=limit, after=after)
        read += page.columns["t_ms"].tolist()
        pages += 1
        if pages == 1:
            assert compaction.compact(before_ms, CHUNK_MS).rows  # between two pages
        if page.next_cursor is None:
            break
        after = page.next_cursor

    assert read == every


def test_compacted_rows_turn_back_into_the_very_windows_they_hold():
    node = register()
    stream = Stream("s1", T0_MS + 2_300, seed=12)
    lengths = [50, 1, 7, 50, 33]
    for seq in range(40):
        send(stream.batch(node, seq, lengths[seq % len(lengths)]))
    fields = ("run_gpu_id", "stream", "seq", "first_ms", "last_ms", "samples", "energy_j", "prev_t_ms",
              "prev_energy_mj", "readings")
    stored = sorted((*row[:-1], bytes(row[-1])) for row in SampleWindow.objects.values_list(*fields))
    run = Run.objects.get()
    before = figures(run)
    assert compact().rows
    compacted = SampleWindow.objects.exclude(parts=None).count()

    with connection.cursor() as cursor:  # what migrating back past telemetry 0019 does
        assert compaction.expand_all(cursor, batch=3) == compacted

    assert not SampleWindow.objects.exclude(parts=None).exists()
    assert sorted((*row[:-1], bytes(row[-1])) for row in SampleWindow.objects.values_list(*fields)) == stored
    assert figures(run) == before


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the task's lock is PostgreSQL's")
def test_a_compaction_task_that_starts_while_another_runs_leaves_it_the_work(settings):
    import psycopg

    settings.WATTWISE_COMPACT_CHUNK_S = CHUNK_MS // 1000
    send_stream(seed=13, batches=12)
    with psycopg.connect(**connection.get_connection_params(), autocommit=True) as other:
        other.execute("SELECT pg_advisory_lock(%s)", [compaction._LOCK_KEY])  # the task already running
        assert compaction.compact_closed(FAR_FUTURE_MS).as_json() == {
            "gpus": 0, "windows": 0, "rows": 0, "samples": 0, "more": True}
        with pytest.raises(CommandError, match="another compaction is running"):
            call_command("compact_windows", "--before-ms", str(FAR_FUTURE_MS))
        other.execute("SELECT pg_advisory_unlock(%s)", [compaction._LOCK_KEY])
    assert compaction.compact_closed(FAR_FUTURE_MS).rows == 2


@pytest.mark.django_db(transaction=True)
def test_reads_outside_a_transaction_take_one_snapshot_and_give_the_same_figures():
    """The other tests run inside a transaction, where ``one_snapshot`` leaves the caller's alone: here the
    reads open their own (REPEATABLE READ on PostgreSQL)."""
    send_stream(seed=14, batches=24)
    run = Run.objects.get()
    before = figures(run)
    compact()
    assert_close(before, figures(run))
    assert not connection.in_atomic_block
