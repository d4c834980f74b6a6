"""Raw retention on PostgreSQL: weekly partitions of windows and receipts, made ahead and dropped when expired.

A run aged past the retention loses its raw windows by whole partitions (checked in ``pg_inherits``) and
keeps its totals, minute rollups, carbon figures and events; its pages and exports say which stretch
expired. Maintenance is idempotent, and a window with no partition of its own still ingests (the default
partition takes it; maintenance moves it into its week, or deletes it once it is past the retention).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from dashboard.telemetry import ingest, partitions, retention
from dashboard.telemetry.models import BatchReceipt, GpuMinute, Run, RunEvent, RunGpu, SampleWindow
from dashboard.telemetry.partitions import RECEIPTS, WINDOWS, monday
from dashboard.telemetry.windows import TimeRange
from tests.factories import batch_payload, envelope, gpu_entry, member, register, simple_batch
from wattwise_agent.wire import event_payload

pytestmark = [pytest.mark.django_db, pytest.mark.services, pytest.mark.usefixtures("postgres")]

DAY_MS = 86_400_000


def partitions_of(table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                       "WHERE i.inhparent = %s::regclass", [table])
        return {row[0] for row in cursor.fetchall()}


def rows_in(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        return int(cursor.fetchone()[0])


def maintain(now: datetime, retention_days: int) -> retention.Maintained:
    """The beat task's pass. It runs in a transaction of its own; here the test's transaction still holds the
    batches' deferred foreign-key checks, which PostgreSQL will not leave pending across a DROP TABLE."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    return retention.maintain(now, retention_days=retention_days)


def done_horizon(now: datetime):
    return retention.Horizons.at(now, 90).windows


def send_run(node, t0_ms: int, *, batches: int = 3, run: str = "old-run") -> Run:
    """``batches`` one-second windows of one GPU from ``t0_ms``, with an event in the first."""
    for seq in range(batches):
        t_ms = [t0_ms + seq * 1000 + 100 * i for i in range(10)]
        energy = [1_000_000 + 30_000 * (seq * 10 + i) for i in range(10)]
        prev = (t_ms[0] - 100, energy[0] - 30_000) if seq else None
        events = [event_payload(t_ms[0], "step_end", {"step": 1})] if seq == 0 else []
        payload = batch_payload([gpu_entry("GPU-1", t_ms, energy, prev=prev)], run=run, stream=run, seq=seq,
                                events=events)
        assert ingest.ingest_batch(envelope(node, payload)).status == "stored"
    return Run.objects.get(name=run)


def figures(run: Run) -> dict[str, object]:
    from planner.carbon.models import RunCarbon, RunGpuCarbon

    return {
        "totals": list(RunGpu.objects.filter(run=run).values("energy_j", "samples", "power_sum_w", "peak_power_w",
                                                             "first_ms", "last_ms")),
        "minutes": list(GpuMinute.objects.filter(run_gpu__run=run).order_by("minute_ms").values()),
        "carbon": list(RunCarbon.objects.filter(run=run).values()),
        "gpu_carbon": list(RunGpuCarbon.objects.filter(run_gpu__run=run).values()),
        "events": list(RunEvent.objects.filter(run=run).values("t_ms", "kind", "data")),
    }


def test_a_run_aged_past_the_raw_retention_loses_its_partitions_and_keeps_its_figures(client, monkeypatch):
    from planner.carbon import tasks

    now = timezone.now()
    # At the start of a minute: its three 1 s windows then fall in one minute (one row of the minute CSV).
    t0_ms = int((now - timedelta(days=200)).timestamp() * 1000) // 60_000 * 60_000
    week = monday(datetime.fromtimestamp(t0_ms / 1000, UTC).date())
    node = register()
    run = send_run(node, t0_ms)
    send_run(node, t0_ms + 10_000, run="old-run-b")  # to compare it with
    tasks.recompute_run(run.pk)
    # A retention long enough to keep the run: its week gets a partition, and its windows move there.
    maintain(now, retention_days=400)
    assert WINDOWS.name(week) in partitions_of(WINDOWS.table)
    assert rows_in(WINDOWS.name(week)) == 6 and rows_in(WINDOWS.default) == 0
    before = figures(run)
    assert before["carbon"] and before["minutes"] and before["events"]

    done = maintain(now, retention_days=90)
    assert WINDOWS.name(week) in done.dropped
    assert WINDOWS.name(week) not in partitions_of(WINDOWS.table)
    assert not SampleWindow.objects.filter(run_gpu__run=run).exists()
    assert figures(run) == before

    client.force_login(member("ana", "vision"))
    expired_text = "Raw samples from " + datetime.fromtimestamp(t0_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Raw data expired" in page and expired_text in page and "kept 90 days" in page
    assert 'id="chart-power"' in page  # drawn from the minute rollups, not empty
    run_gpu = RunGpu.objects.get(run=run)
    gpu_page = client.get(reverse("run_gpu", args=[run.pk, run_gpu.pk])).content.decode()
    assert expired_text in gpu_page and 'id="chart-power"' in gpu_page

    raw = client.get(reverse("run_samples_csv", args=[run.pk]))
    assert raw.status_code == 410
    assert expired_text in raw.content.decode() and "resolution=minute" in raw.content.decode()
    minutes = client.get(reverse("run_samples_csv", args=[run.pk]), {"resolution": "minute"})
    assert minutes.status_code == 200 and len(b"".join(minutes.streaming_content).splitlines()) == 2
    api = client.get(f"/api/runs/{run.pk}/gpus/{run_gpu.pk}/samples")
    assert api.status_code == 410 and "per-minute buckets" in api.json()["detail"]
    buckets = client.get(f"/api/runs/{run.pk}/gpus/{run_gpu.pk}/samples/buckets").json()
    assert buckets["source"] == "minutes" and buckets["t_ms"]
    summary = client.get(reverse("run_summary_csv", args=[run.pk]))
    assert summary.status_code == 200
    # Compare draws it from the minute rollups too (its raw windows, short as the run is, are gone).
    from dashboard.runs import compare_series

    plans, plan_for = [], compare_series.plan_for
    monkeypatch.setattr(compare_series, "plan_for", lambda *a, **k: plans.append(plan_for(*a, **k)) or plans[-1])
    assert client.get(reverse("compare"), {"runs": ["vision/old-run", "vision/old-run-b"]}).status_code == 200
    assert [p.source for p in plans] == ["minutes"]
    [drawn] = compare_series.read_series(
        [compare_series.RunReadings(run.pk, TimeRange(run_gpu.first_ms, run_gpu.last_ms))], plans[0])
    assert drawn.cumulative_j[-1] == pytest.approx(run_gpu.energy_j)
    horizon = datetime.fromtimestamp(WINDOWS.bound(done_horizon(now)) / 1000, UTC).strftime("%Y-%m-%d %H:%M")
    nodes = client.get(reverse("nodes")).content.decode()
    assert f"Raw samples are kept 90 days: samples from before {horizon} UTC have expired" in nodes

    # Four months on, the receipts (received today, kept a week longer than windows) go too.
    later = maintain(now + timedelta(days=120), retention_days=90)
    assert RECEIPTS.name(monday(now.date())) in later.dropped
    assert not BatchReceipt.objects.filter(run=run).exists()
    assert figures(run) == before
    page = client.get(run.get_absolute_url()).content.decode()
    assert "Completeness can no longer be checked" in page


def test_partition_maintenance_is_idempotent():
    now = timezone.now()
    first = maintain(now, retention_days=30)
    windows, receipts = partitions_of(WINDOWS.table), partitions_of(RECEIPTS.table)
    again = maintain(now, retention_days=30)
    assert (again.created, again.dropped) == ([], [])
    assert (partitions_of(WINDOWS.table), partitions_of(RECEIPTS.table)) == (windows, receipts)
    # This week, the next two, and every week back to the retention, each once; and the default partition.
    this_week = WINDOWS.name(monday(now.date()))
    assert {this_week, WINDOWS.name(monday(now.date()) + timedelta(weeks=2)), WINDOWS.default} <= windows
    assert set(first.created) | windows >= {this_week}


def test_a_window_far_in_the_future_or_the_past_still_ingests(settings):
    settings.WATTWISE_MAX_FUTURE_S = 5 * 365 * 86_400.0  # let a clock years ahead through admission
    now = timezone.now()
    maintain(now, retention_days=90)
    node = register()
    future_ms = int((now + timedelta(days=700)).timestamp() * 1000)
    past_ms = int((now - timedelta(days=1000)).timestamp() * 1000)
    future, past = send_run(node, future_ms, run="future"), send_run(node, past_ms, run="past")
    assert rows_in(WINDOWS.default) == 6  # no week of theirs has a partition: the default takes them

    done = maintain(now, retention_days=90)
    # The past ones are beyond the retention: deleted from the default partition; the future ones wait there.
    assert done.in_default[WINDOWS.table] == 3
    assert SampleWindow.objects.filter(run_gpu__run=future).count() == 3
    assert not SampleWindow.objects.filter(run_gpu__run=past).exists()
    assert RunGpu.objects.get(run=past).samples == 30  # its totals are kept

    # When their week comes, maintenance makes its partition and moves them into it.
    when = datetime.fromtimestamp(future_ms / 1000, UTC)
    moved = maintain(when, retention_days=90)
    assert WINDOWS.name(monday(when.date())) in moved.created
    assert rows_in(WINDOWS.name(monday(when.date()))) == 3 and rows_in(WINDOWS.default) == 0
    assert SampleWindow.objects.filter(run_gpu__run=future).count() == 3


def _copy(node, t0_ms: int, seq: int, *, shift_ms: int = 0) -> dict:
    """Batch ``seq`` of a one-GPU stream from ``t0_ms``: one-second windows of ten readings; ``shift_ms`` moves
    its readings (not where it continues from), making another batch under the same number."""
    t_ms = [t0_ms + 1000 * seq + 100 * i + shift_ms for i in range(10)]
    energy = [1_000_000 + 30_000 * (10 * seq + i) for i in range(10)]
    prev = (t0_ms + 1000 * seq - 100, energy[0] - 30_000) if seq else None
    return envelope(node, batch_payload([gpu_entry("GPU-1", t_ms, energy, prev=prev)], seq=seq))


@pytest.mark.django_db(transaction=True)
def test_two_batches_under_one_number_arriving_together_store_only_the_first():
    """Receipts are partitioned by arrival, so no unique index spans (node, stream, seq) alone, and two
    different batches under one number have different windows: only the claim's advisory lock makes the
    second wait for the first to commit, find its receipt and be refused as a replay, not counted twice.
    (Two identical copies are also stopped by the windows' unique key, whose first_ms they share.)"""
    import threading

    from django.db import connections, transaction

    from dashboard.telemetry import batch_store
    from dashboard.telemetry.admission import authenticate
    from wattwise_agent.wire import decode_batch

    node = register()
    t0_ms = int(timezone.now().timestamp() * 1000) - 10_000
    # The run and its GPU exist first, so nothing but the receipt claim can hold the second batch back.
    assert ingest.ingest_batch(_copy(node, t0_ms, 0)).status == "stored"
    outcomes: list[str] = []

    def deliver_other() -> None:
        try:
            outcomes.append(ingest.ingest_batch(_copy(node, t0_ms, 1, shift_ms=50)).status)
        finally:
            connections.close_all()

    with transaction.atomic():
        # Batch 1 claims its receipt and has not committed when another batch numbered 1 arrives.
        found, payload, digest = authenticate(_copy(node, t0_ms, 1), "batch", None)
        batch_store.store_batch(found, decode_batch(payload), digest, None)
        other = threading.Thread(target=deliver_other)
        other.start()
        _wait_for_a_session_waiting_on_a_lock()
    other.join(30)
    assert outcomes == ["rejected"]
    assert BatchReceipt.objects.count() == 2 and SampleWindow.objects.count() == 2
    assert RunGpu.objects.get().samples == 20


@pytest.mark.django_db(transaction=True)
def test_a_coalesced_group_claims_its_receipts_under_the_same_locks_as_a_batch_alone():
    """A group (``group_store``) claims its receipts with ``batch_store``'s advisory locks: while batch 1 is
    being stored alone, a group holding another batch numbered 1 waits, finds that receipt, and is stored
    batch by batch: the replay refused, the group's other batch stored once."""
    import threading

    from django.db import connections, transaction

    from dashboard.telemetry import batch_store, coalesce
    from dashboard.telemetry.admission import authenticate
    from wattwise_agent.wire import decode_batch

    node, other_node = register("node-a"), register("node-b")
    t0_ms = int(timezone.now().timestamp() * 1000) - 10_000
    assert ingest.ingest_batch(_copy(node, t0_ms, 0)).status == "stored"
    outcomes: list[str] = []

    def deliver_group() -> None:
        try:
            group = [_copy(node, t0_ms, 1, shift_ms=50), _copy(other_node, t0_ms, 0)]
            outcomes.extend(outcome.status for outcome in coalesce.ingest_batches(group))
        finally:
            connections.close_all()

    with transaction.atomic():
        found, payload, digest = authenticate(_copy(node, t0_ms, 1), "batch", None)
        batch_store.store_batch(found, decode_batch(payload), digest, None)
        other = threading.Thread(target=deliver_group)
        other.start()
        _wait_for_a_session_waiting_on_a_lock()
    other.join(30)
    assert outcomes == ["rejected", "stored"]
    assert BatchReceipt.objects.count() == 3 and SampleWindow.objects.count() == 3
    assert sorted(RunGpu.objects.values_list("samples", flat=True)) == [10, 20]


def _wait_for_a_session_waiting_on_a_lock() -> None:
    import threading

    for _ in range(3000):
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_stat_clear_snapshot()")  # inside a transaction the view is a snapshot
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0] >= 1:
                return
        threading.Event().wait(0.01)
    raise AssertionError("the second batch never waited for the first one's receipt claim")


@pytest.mark.django_db(transaction=True)  # the reader must see the partitions, so they are committed
def test_a_long_reader_postpones_dropping_a_partition_instead_of_queueing_ingest_behind_it():
    """DROP of a partition locks the whole table: behind a long read it gives up after a moment and the next
    pass does it, instead of waiting while every insert queues behind the DROP."""
    import psycopg

    now = timezone.now()
    t0_ms = int((now - timedelta(days=200)).timestamp() * 1000)
    send_run(register(), t0_ms)
    retention.maintain(now, retention_days=400)  # the run's week gets its partition
    week = WINDOWS.name(monday(datetime.fromtimestamp(t0_ms / 1000, UTC).date()))
    settings_dict = connection.settings_dict
    with psycopg.connect(host=settings_dict["HOST"], port=settings_dict["PORT"] or 5432,
                         user=settings_dict["USER"], dbname=settings_dict["NAME"]) as reader:
        reader.execute(f"SELECT count(*) FROM {WINDOWS.table}")  # a long read, in its open transaction
        done = retention.maintain(now, retention_days=90)
    assert f"drop {WINDOWS.table} before {done_horizon(now)}" in done.postponed
    assert week in partitions_of(WINDOWS.table) and week not in done.dropped
    assert week in retention.maintain(now, retention_days=90).dropped  # once the reader is gone


def index_state(partition: str) -> tuple[int, bool]:
    """(bytes of the partition's indexes, whether every index of the windows is valid and attached to its parent's)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_indexes_size(%s::regclass)", [partition])
        size = int(cursor.fetchone()[0])
        cursor.execute(
            "SELECT bool_and(x.indisvalid), count(*) FILTER (WHERE i.inhrelid IS NULL) FROM pg_index x "
            "LEFT JOIN pg_inherits i ON i.inhrelid = x.indexrelid WHERE x.indrelid = %s::regclass", [partition])
        valid, detached = cursor.fetchone()
    return size, bool(valid) and detached == 0


@pytest.mark.django_db(transaction=True)  # REINDEX CONCURRENTLY runs outside any transaction, as in the beat task
def test_closed_weeks_have_their_indexes_rebuilt_once_each_and_keep_every_row():
    node = register()
    for seq in range(30):  # windows from 2026-01-01 (T0), in the week of Monday 2025-12-29
        assert ingest.ingest_batch(simple_batch(node, seq=seq)).status == "stored"
    energy_j = RunGpu.objects.get().energy_j
    now = datetime(2026, 1, 22, tzinfo=UTC)  # that week and the next two are over by more than a day
    passes = [retention.maintain(now, retention_days=30) for _ in range(12)]
    compacted = [name for done in passes for name in done.compacted]
    week = WINDOWS.name(monday(datetime(2026, 1, 1).date()))
    assert week in compacted and len(compacted) == len(set(compacted))  # each week once, one a pass per table
    assert all(len([n for n in done.compacted if n.startswith(WINDOWS.table)]) <= 1 for done in passes)
    assert passes[-1].compacted == [] and not any(done.postponed for done in passes)
    assert partitions.compacted(week) and not partitions.compacted(WINDOWS.name(monday(now.date())))  # not closed
    assert index_state(week)[1]
    assert (SampleWindow.objects.count(), RunGpu.objects.get().energy_j) == (30, energy_j)
    assert ingest.ingest_batch(simple_batch(node, seq=30)).status == "stored"  # the rebuilt indexes take rows
    assert ingest.ingest_batch(simple_batch(node, seq=30)).status == "duplicate"
