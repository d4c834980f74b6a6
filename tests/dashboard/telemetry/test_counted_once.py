"""Each GPU counted once: streams that read one GPU over the same time store the energy of the union of the
time they covered, whatever order their windows arrive in; every reading is still stored."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from django.db import connection, connections, transaction
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from dashboard.telemetry import ingest
from dashboard.telemetry.models import GpuMinute, Rejection, RunGpu, SampleWindow
from tests.factories import T0_MS, RegisteredNode, batch_payload, envelope, gpu_entry, register

pytestmark = pytest.mark.django_db

BASE_MJ = 7_000_000_000


def steady(power_w: int) -> Callable[[int], int]:
    """A counter rising at constant power (W × ms = mJ)."""
    return lambda t_ms: BASE_MJ + power_w * (t_ms - T0_MS)


def alternating(t_ms: int) -> int:
    """A counter of power that alternates 200 W / 600 W every 130 ms: energy is uneven within intervals."""
    since = t_ms - T0_MS
    periods, rest = divmod(since, 260)
    return BASE_MJ + periods * (200 + 600) * 130 + (200 * rest if rest <= 130 else 200 * 130 + 600 * (rest - 130))


def windows_of(node: RegisteredNode, stream: str, first_ms: int, readings: int, counter: Callable[[int], int], *,
               per_window: int = 10, run: str = "shared", uuid: str = "GPU-1",
               energy_source: str = "counter") -> list[dict[str, Any]]:
    """One stream's batches: readings 100 ms apart from ``first_ms``, ``per_window`` to a batch."""
    times = [first_ms + 100 * i for i in range(readings)]
    out = []
    for seq, start in enumerate(range(0, readings, per_window)):
        t_ms = times[start:start + per_window]
        prev = (times[start - 1], counter(times[start - 1])) if start else None
        entry = gpu_entry(uuid, t_ms, [counter(t) for t in t_ms], prev=prev, energy_source=energy_source)
        out.append(envelope(node, batch_payload([entry], run=run, stream=stream, seq=seq)))
    return out


def store(envelopes: list[dict[str, Any]]) -> None:
    for message in envelopes:
        outcome = ingest.ingest_batch(message)
        assert outcome.status == "stored", outcome.detail


def interleave(*streams: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k in range(max(len(s) for s in streams)):
        out += [s[k] for s in streams if k < len(s)]
    return out


def stored_energies_j() -> tuple[float, float, float]:
    """The GPU's energy as its running total, its windows and its minute rollups hold it."""
    run_gpu = RunGpu.objects.get()
    windows = SampleWindow.objects.aggregate(j=Sum("energy_j"))["j"]
    minutes = GpuMinute.objects.aggregate(j=Sum("energy_j"))["j"]
    return run_gpu.energy_j, windows, minutes


def assert_everything_says(expected_j: float, *, rel: float = 1e-12, abs_j: float = 1e-9) -> None:
    for energy_j in stored_energies_j():
        assert energy_j == pytest.approx(expected_j, rel=rel, abs=abs_j)


def truth_j(counter: Callable[[int], int], first_ms: int, last_ms: int) -> float:
    return (counter(last_ms) - counter(first_ms)) / 1000


def test_two_streams_reading_a_gpu_at_the_same_instants_store_the_energy_of_one():
    node = register()
    a = windows_of(node, "a", T0_MS, 100, steady(300))
    b = windows_of(node, "b", T0_MS, 100, steady(300))
    store(interleave(a, b))
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 9_900))
    run_gpu = RunGpu.objects.get()
    assert run_gpu.samples == 200  # every reading is stored, as sent
    assert (run_gpu.shared, run_gpu.streams, run_gpu.overlap_ms) == (True, 2, 9_900)
    # Whichever window was stored first counts; the other stream's window at the same time counts nothing.
    assert sorted(SampleWindow.objects.values_list("energy_j", flat=True))[:10] == [0.0] * 10


@pytest.mark.parametrize("order", ["a-first", "b-first", "interleaved", "reversed", "shuffled"])
def test_the_union_of_staggered_streams_is_counted_whatever_order_windows_arrive_in(order):
    node = register()
    counter = steady(450)
    # Three agents start at different times, sample at different instants, and stop at different times.
    a = windows_of(node, "a", T0_MS, 80, counter)
    b = windows_of(node, "b", T0_MS + 2_037, 90, counter)
    c = windows_of(node, "c", T0_MS + 4_071, 40, counter, per_window=7)
    arrivals = {
        "a-first": a + b + c, "b-first": b + c + a, "interleaved": interleave(a, b, c),
        "reversed": interleave(a, b, c)[::-1], "shuffled": random.Random(3).sample(a + b + c, len(a + b + c)),
    }[order]
    store(arrivals)
    # From a's first reading to b's last, to the float.
    assert_everything_says(truth_j(counter, T0_MS, T0_MS + 2_037 + 8_900), rel=1e-9)
    run_gpu = RunGpu.objects.get()
    assert run_gpu.streams == 3
    # Read twice or more: from b's first reading to c's last, however many streams read it at once.
    assert run_gpu.overlap_ms == (4_071 + 3_900) - 2_037


@pytest.mark.parametrize("order", ["a-first", "interleaved"])
def test_partly_covered_intervals_count_exactly_from_the_other_streams_readings(order):
    node = register()
    a = windows_of(node, "a", T0_MS, 100, alternating)
    b = windows_of(node, "b", T0_MS + 5_050, 100, alternating)
    store(a + b if order == "a-first" else interleave(a, b))
    # Uneven power within every interval, yet where one stream's time ends the other's reading of the same
    # counter there says how much of the partly covered interval is left: the union's energy, exactly.
    assert_everything_says(truth_j(alternating, T0_MS, T0_MS + 5_050 + 9_900), rel=1e-12)


@pytest.mark.parametrize("order", ["a-first", "interleaved"])
def test_without_a_counter_partly_covered_intervals_count_pro_rata_within_one_interval_per_boundary(order):
    node = register()

    def integral(offset_mj: int) -> Callable[[int], int]:
        return lambda t_ms: alternating(t_ms) - BASE_MJ + offset_mj  # each agent integrates power from its start

    a = windows_of(node, "a", T0_MS, 100, integral(0), energy_source="power_integration")
    b = windows_of(node, "b", T0_MS + 5_050, 100, integral(12_345), energy_source="power_integration")
    store(a + b if order == "a-first" else interleave(a, b))
    truth = truth_j(alternating, T0_MS, T0_MS + 5_050 + 9_900)
    one_interval_j = 600 * 100 / 1000  # at most 600 W over 100 ms
    # a first: counting passes to b once, at a's end. Interleaved, it may pass at every window of the overlap.
    boundaries = 1 if order == "a-first" else 2 * 5
    stored_j, windows_j, minutes_j = stored_energies_j()
    assert abs(stored_j - truth) <= boundaries * one_interval_j
    assert stored_j != pytest.approx(truth, rel=1e-9)  # pro rata: uneven power makes it inexact
    assert windows_j == pytest.approx(stored_j, rel=1e-12) and minutes_j == pytest.approx(stored_j, rel=1e-12)
    assert stored_j < truth * 1.01  # nowhere near the sum of the streams (1.5 times the truth)


def test_readings_that_do_not_fit_between_an_intervals_own_count_pro_rata():
    node = register()
    # b's process saw a reset that a's did not (a simulator's own): its counter is not a's.
    a = windows_of(node, "a", T0_MS, 100, steady(300))
    b = windows_of(node, "b", T0_MS + 5_050, 100, lambda t_ms: steady(300)(t_ms) - BASE_MJ)
    store(a + b)
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 5_050 + 9_900), rel=1e-9)  # even power: exact


def test_three_streams_over_the_same_ten_seconds_overlap_for_ten_seconds_not_twenty():
    node = register()
    streams = [windows_of(node, name, T0_MS + offset, 101, steady(200)) for name, offset in
               (("a", 0), ("b", 30), ("c", 60))]
    store(interleave(*streams))
    run_gpu = RunGpu.objects.get()
    assert run_gpu.streams == 3
    assert run_gpu.overlap_ms == 10_000  # from b's first reading to b's last, where c alone goes on
    assert_everything_says(truth_j(steady(200), T0_MS, T0_MS + 60 + 10_000), rel=1e-9)


def test_an_agent_restarted_later_is_a_second_stream_that_overlaps_nothing():
    node = register()
    store(windows_of(node, "before", T0_MS, 50, steady(300)) + windows_of(node, "after", T0_MS + 6_000, 40, steady(300)))
    run_gpu = RunGpu.objects.get()
    assert (run_gpu.streams, run_gpu.overlap_ms, run_gpu.overlapped) == (2, 0, False)
    # The gap between them was read by nobody: each stream's own readings, added.
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 4_900) + truth_j(steady(300), T0_MS + 6_000, T0_MS + 9_900))


def test_a_gpu_read_by_one_stream_is_stored_without_looking_at_other_streams():
    node = register()
    messages = windows_of(node, "only", T0_MS, 30, steady(300))
    store(messages[:1])
    with CaptureQueriesContext(connection) as queries:
        store(messages[1:])
    statements = " ".join(q["sql"] for q in queries.captured_queries)
    # coverage.covering, coverage.new_to and the correction of the totals (the receipt claim has a NOT EXISTS too).
    assert "WITH near" not in statements and "w.run_gpu_id = r.id" not in statements
    assert "overlap_ms +" not in statements
    run_gpu = RunGpu.objects.get()
    assert (run_gpu.first_stream, run_gpu.shared, run_gpu.streams, run_gpu.overlap_ms) == ("only", False, 1, 0)
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 2_900))


def test_the_first_stream_looks_at_the_others_once_a_second_stream_has_written_the_gpu():
    node = register()
    a = windows_of(node, "a", T0_MS, 60, steady(300))
    b = windows_of(node, "b", T0_MS, 30, steady(300))
    store(a[:1] + b)  # b covers a's next two windows before they arrive
    store(a[1:])
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 5_900))


def test_a_wraparound_and_a_reset_are_counted_by_the_wire_rule_also_when_shared():
    node = register()
    # The agent sends the counter modulo 2**63: ten readings 300 mJ apart pass the top and wrap round;
    # then a driver reload starts it again from 400.
    wire_values = [(2**63 - 1_000 + 300 * i) % 2**63 for i in range(10)] + [400 + 300 * i for i in range(10)]
    assert wire_values[4] < wire_values[3]  # the wrap

    def counter(t_ms: int) -> int:
        return wire_values[(t_ms - T0_MS) // 100]

    store(windows_of(node, "a", T0_MS, 20, counter) + windows_of(node, "b", T0_MS, 20, counter))
    assert_everything_says((300 * 9 + 400 + 300 * 9) / 1000)


def test_a_reset_far_from_the_top_counts_the_new_value_from_zero():
    node = register()
    values = [5_000_000_000 + 300 * i for i in range(10)] + [250 + 300 * i for i in range(10)]
    store(windows_of(node, "a", T0_MS, 20, lambda t: values[(t - T0_MS) // 100]))
    assert_everything_says((300 * 9 + 250 + 300 * 9) / 1000)


@pytest.mark.parametrize("field", ["energy_mj", "prev_energy_mj"])
def test_a_counter_beyond_the_wire_range_is_a_recorded_rejection(field):
    node = register()
    entry = gpu_entry("GPU-1", [T0_MS + 100], [2**63 - 1], prev=(T0_MS, 2**63 - 2))
    assert ingest.ingest_batch(envelope(node, batch_payload([entry], seq=1))).status == "stored"
    entry[field] = [2**63] if field == "energy_mj" else 2**63
    entry["t_ms"], entry["prev_t_ms"] = [T0_MS + 300], T0_MS + 200
    outcome = ingest.ingest_batch(envelope(node, batch_payload([entry], seq=2)))
    assert outcome.status == "rejected"
    assert "9223372036854775807" in Rejection.objects.get().reason
    assert SampleWindow.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_streams_storing_at_the_same_moment_count_the_gpu_once(postgres):
    node = register()
    a = windows_of(node, "a", T0_MS, 40, steady(300))
    b = windows_of(node, "b", T0_MS, 40, steady(300))
    store(a[:1])
    run_gpu = RunGpu.objects.get()
    for k in range(1, 4):
        # Both batches start while the GPU's row is locked, so both are in flight together; the row lock
        # the upsert takes makes the second wait for the first and count against what it stored.
        with transaction.atomic():
            RunGpu.objects.select_for_update().get(pk=run_gpu.pk)
            threads = [threading.Thread(target=_store_in_thread, args=(m,)) for m in (a[k], b[k])]
            for thread in threads:
                thread.start()
            _wait_for_waiting_sessions(2)
        for thread in threads:
            thread.join(30)
    store([b[0]])
    assert_everything_says(truth_j(steady(300), T0_MS, T0_MS + 3_900))


def _store_in_thread(message: dict[str, Any]) -> None:
    try:
        assert ingest.ingest_batch(message).status == "stored"
    finally:
        connections.close_all()


def _wait_for_waiting_sessions(count: int) -> None:
    for _ in range(3000):
        with connection.cursor() as cursor:
            # Inside a transaction the activity view is a snapshot unless cleared.
            cursor.execute("SELECT pg_stat_clear_snapshot()")
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0] >= count:
                return
        threading.Event().wait(0.01)
    raise AssertionError(f"{count} sessions never waited for the row lock")


def test_the_counted_deltas_keep_every_reading_for_the_charts():
    node = register()
    store(interleave(windows_of(node, "a", T0_MS, 50, steady(300)), windows_of(node, "b", T0_MS + 40, 50, steady(300))))
    windows = SampleWindow.objects.order_by("first_ms", "stream")
    assert sum(w.samples for w in windows) == 100
    assert {w.stream for w in windows} == {"a", "b"}
    assert np.isclose(sum(w.energy_j for w in windows), truth_j(steady(300), T0_MS, T0_MS + 4_940))


def test_the_power_chart_of_a_gpu_two_streams_read_shows_its_power_not_half_of_it():
    """Windows of a shared GPU count only time no other stream covered, so their energy over their whole
    length would halve the power: such GPUs are drawn from their samples."""
    from dashboard.runs import series

    node = register()
    # 500 s at 300 W, 5 s windows from both streams: wide enough buckets for the per-window path.
    store(interleave(windows_of(node, "a", T0_MS, 5_000, steady(300), per_window=50),
                     windows_of(node, "b", T0_MS, 5_000, steady(300), per_window=50)))
    run_gpu = RunGpu.objects.get()
    found = series.gpu_buckets([run_gpu.pk], series.span_of([run_gpu]), ("power_w",), points=50)[run_gpu.pk]
    assert not found.from_windows
    assert np.allclose(found.metrics["power_w"].mean, 300.0)
