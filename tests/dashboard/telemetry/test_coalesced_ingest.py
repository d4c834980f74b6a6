"""Batches received together are stored as one unit of work, with the totals, rollups, refusals and
announcements they would have had one by one; a redelivered group changes nothing."""

from __future__ import annotations

import json

import pytest
from django.db import DataError, OperationalError, connection, transaction
from django.dispatch import receiver
from django.test.utils import CaptureQueriesContext

from dashboard.telemetry import batch_store, bound_sql, coalesce, group_store, ingest
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import BatchReceipt, GpuMinute, Rejection, RunEvent, RunGpu, SampleWindow
from dashboard.telemetry.signals import samples_stored
from tests.factories import envelope, register, simple_batch
from wattwise_agent.wire import event_payload

pytestmark = pytest.mark.django_db


def stored_state() -> dict[str, object]:
    return {
        "gpus": sorted(RunGpu.objects.values_list("gpu__uuid", "energy_j", "samples", "power_sum_w", "peak_power_w",
                                                  "first_ms", "last_ms", "max_window_ms", "shared")),
        "windows": sorted(SampleWindow.objects.values_list("stream", "seq", "first_ms", "last_ms", "samples", "energy_j")),
        "minutes": sorted(GpuMinute.objects.values_list("run_gpu__gpu__uuid", "minute_ms", "samples", "energy_j",
                                                        "power_min_w", "power_max_w", "temp_max_c", "util_sum_pct")),
        "receipts": BatchReceipt.objects.count(),
        "events": sorted(RunEvent.objects.values_list("node__name", "t_ms", "kind", "data")),
    }


def many_batches() -> list[dict]:
    a, b = register("node-a"), register("node-b")
    # 700 readings each: the windows reach over minutes, so a group folds several batches into one minute row.
    messages = ([simple_batch(a, seq=seq, samples=70) for seq in range(10)]
                + [simple_batch(b, seq=seq, uuid="GPU-9", samples=70) for seq in range(10)])
    with_event = json.loads(messages[3]["body"])
    with_event["events"] = [event_payload(with_event["window_start_ms"], "step_end", {"step": 3, "loss": 0.5})]
    messages[3] = envelope(a, with_event)
    return messages


def test_a_group_is_stored_as_the_same_batches_one_by_one_would_be():
    messages = many_batches()
    outcomes = coalesce.ingest_batches(messages)
    assert [o.status for o in outcomes] == ["stored"] * 20
    grouped = stored_state()
    assert len(grouped["events"]) == 1
    for model in (GpuMinute, SampleWindow, BatchReceipt, RunGpu, RunEvent):
        model.objects.all().delete()
    for message in messages:
        assert ingest.ingest_batch(message).status == "stored"
    assert stored_state() == grouped
    assert grouped["receipts"] == 20 and not Rejection.objects.exists()


def test_one_bad_message_in_a_group_is_refused_alone_and_the_others_are_stored():
    node = register()
    messages = [simple_batch(node, seq=seq) for seq in range(4)]
    forged = dict(messages[1], body=messages[1]["body"].replace('"run-1"', '"run-2"'))  # signature no longer fits
    broken = simple_batch(node, seq=3, start_mj=5_000_000)  # does not continue seq 2: refused at storing time
    group = [messages[0], forged, messages[2], broken, simple_batch(register("node-b"), seq=0)]
    outcomes = coalesce.ingest_batches(group)
    assert [o.status for o in outcomes] == ["stored", "rejected", "stored", "stored", "stored"]
    # The forged copy of seq 1 was refused, so seq 2's window starts a gap; seq 3 (broken counter, same times)
    # continues seq 2 in time, and is stored: what continuity checks is time, as one by one.
    codes = list(Rejection.objects.values_list("reason_code", flat=True))
    assert codes == [Rejection.Code.BAD_SIGNATURE]
    assert set(BatchReceipt.objects.values_list("seq", flat=True)) == {0, 2, 3}
    assert BatchReceipt.objects.count() == 4


def test_a_window_that_does_not_continue_its_stream_is_refused_and_the_rest_of_the_group_stored():
    node = register()
    first, second = simple_batch(node, seq=0), simple_batch(node, seq=1)
    payload = json.loads(second["body"])
    payload["gpus"][0]["prev_t_ms"] -= 50  # claims an earlier last reading than seq 0 has
    altered = envelope(node, payload)
    outcomes = coalesce.ingest_batches([first, altered, simple_batch(register("node-b"), seq=0)])
    assert [o.status for o in outcomes] == ["stored", "rejected", "stored"]
    assert list(Rejection.objects.values_list("reason_code", flat=True)) == [Rejection.Code.CONTINUITY]
    assert BatchReceipt.objects.count() == 2


def test_a_redelivered_group_is_a_no_op():
    messages = many_batches()
    assert {o.status for o in coalesce.ingest_batches(messages)} == {"stored"}
    before = stored_state()
    again = coalesce.ingest_batches(messages)
    assert [o.status for o in again] == ["duplicate"] * 20
    assert stored_state() == before and not Rejection.objects.exists()


def test_a_group_holding_stored_batches_and_copies_stores_each_once():
    messages = many_batches()
    coalesce.ingest_batches(messages[:5])
    outcomes = coalesce.ingest_batches([*messages[3:8], messages[6]])
    assert [o.status for o in outcomes] == ["duplicate", "duplicate", "stored", "stored", "stored", "duplicate"]
    assert BatchReceipt.objects.count() == 8


def test_a_replayed_sequence_number_in_a_group_is_refused_alone():
    node = register()
    coalesce.ingest_batches([simple_batch(node, seq=0)])
    replay = simple_batch(node, seq=0, start_mj=9_000_000)
    outcomes = coalesce.ingest_batches([replay, simple_batch(node, seq=1)])
    assert [o.status for o in outcomes] == ["rejected", "stored"]
    assert list(Rejection.objects.values_list("reason_code", flat=True)) == [Rejection.Code.REPLAY]


def test_samples_stored_is_announced_once_per_run_after_the_group_commits(django_capture_on_commit_callbacks):
    announced: list[int] = []

    @receiver(samples_stored, dispatch_uid="test.coalesced.samples_stored")
    def note(sender, run_id, **kwargs):
        announced.append(run_id)

    messages = many_batches()
    try:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            outcomes = coalesce.ingest_batches(messages)
            assert announced == []  # nothing before the group commits
        # Twenty batches stored: each run they stored samples of is announced once, after the commit.
        assert announced == sorted({o.run_id for o in outcomes}) and len(callbacks) >= 1
        announced.clear()
        with django_capture_on_commit_callbacks(execute=True):
            coalesce.ingest_batches(messages)  # redelivered: nothing stored, nothing announced
        assert announced == []
    finally:
        samples_stored.disconnect(dispatch_uid="test.coalesced.samples_stored")



def test_the_groups_statements_are_seen_by_djangos_query_tools():
    # The bound statements (dashboard.telemetry.bound_sql) go through Django's cursor wrapper: query counts,
    # execute wrappers (the tests' guard that a GET never writes) and the debug log see them.
    with CaptureQueriesContext(connection) as captured:
        outcomes = coalesce.ingest_batches(many_batches())
    assert [o.status for o in outcomes] == ["stored"] * 20
    statements = " ".join(q["sql"] for q in captured.captured_queries)
    for table in ("dashboard_batchreceipt", "dashboard_rungpu", "dashboard_gpuminute"):
        assert f"INSERT INTO {table}" in statements


@pytest.mark.parametrize("samples", [2**31, -(2**31) - 1])
def test_a_window_row_out_of_an_integer_columns_range_is_refused_and_nothing_is_written(samples):
    # Binary COPY (bound_sql.write_rows): psycopg's int4 dumper would wrap the value, where PostgreSQL refuses it.
    node = register()
    assert coalesce.ingest_batches([simple_batch(node, seq=0)])[0].status == "stored"
    row = SampleWindow.objects.values_list(*batch_store.WINDOW_COLUMNS).get()
    with pytest.raises(DataError, match="samples"), transaction.atomic():
        bound_sql.write_rows(SampleWindow._meta.db_table, batch_store.WINDOW_COLUMNS, batch_store.WINDOW_TYPES,
                             [row, (*row[:5], samples, *row[6:])])
    assert SampleWindow.objects.count() == 1


def continuity_lookups(captured: CaptureQueriesContext) -> int:
    """The continuity lookups among the statements (``group_store._last_ms_of``, PostgreSQL's or SQLite's)."""
    return sum("last_ms FROM dashboard_samplewindow" in q["sql"] for q in captured.captured_queries)


def test_a_group_continuing_this_consumers_last_group_looks_nothing_up_and_a_break_is_still_refused(
    django_capture_on_commit_callbacks,
):
    memo, node = IngestMemo(), register()

    def store(messages: list[dict], memo: IngestMemo) -> tuple[list[str], int]:
        with CaptureQueriesContext(connection) as captured, django_capture_on_commit_callbacks(execute=True):
            statuses = [o.status for o in coalesce.ingest_batches(messages, memo)]
        return statuses, continuity_lookups(captured)

    assert store([simple_batch(node, seq=s) for s in (0, 1)], memo) == (["stored"] * 2, 0)  # seq 0 in the group
    # seq 1's last reading is what this consumer's last group stored once it committed: nothing looked up.
    assert store([simple_batch(node, seq=2)], memo) == (["stored"], 0)
    payload = json.loads(simple_batch(node, seq=3)["body"])
    payload["gpus"][0]["prev_t_ms"] -= 50  # claims an earlier last reading than seq 2 has
    assert store([envelope(node, payload)], memo)[0] == ["rejected"]
    assert list(Rejection.objects.values_list("reason_code", flat=True)) == [Rejection.Code.CONTINUITY]
    assert store([simple_batch(node, seq=3)], IngestMemo()) == (["stored"], 1)  # another process: looked up
    assert store([simple_batch(node, seq=5)], memo) == (["stored"], 1)  # seq 4 is not the memo's latest: looked up


def test_a_group_rolled_back_leaves_no_stream_ends_behind(monkeypatch, django_capture_on_commit_callbacks):
    memo, node = IngestMemo(), register()

    def fail(*args):
        raise RuntimeError("the events could not be written")

    monkeypatch.setattr(group_store, "_insert_events", fail)
    with django_capture_on_commit_callbacks(execute=True):
        outcomes = coalesce.ingest_batches([simple_batch(node, seq=s) for s in (0, 1)], memo)
    assert [o.status for o in outcomes] == ["stored"] * 2  # one by one, after the group rolled back
    assert memo.stream_ends == {}  # the rolled-back group's windows never reach the memo

    def database_gone(*args):
        raise OperationalError("the connection was lost")

    monkeypatch.setattr(group_store, "_insert_events", database_gone)  # raised on, to the consumer's retries
    with django_capture_on_commit_callbacks(execute=True), pytest.raises(OperationalError):
        coalesce.ingest_batches([simple_batch(node, seq=2)], memo)
    assert memo.stream_ends == {}
