"""A run says whether it holds everything its agents sent: samples declared against stored, the batch numbers
missing, runs whose agents went silent marked interrupted (and running again when they return), and a late
redelivered open never reopening a session that closed."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dashboard.projects.tokens import issue_token
from dashboard.telemetry import coalesce, ingest, liveness
from dashboard.telemetry.completeness import run_completeness
from dashboard.telemetry.models import BatchReceipt, Run
from tests.dashboard.telemetry.test_run_lifecycle import close_message, open_message
from tests.factories import envelope, member, register, simple_batch

pytestmark = pytest.mark.django_db

SAMPLES = 10  # simple_batch's readings per batch


def stream_with_gaps(node, *, sent: range, lost: set[int], run: str = "big-run", stream: str = "sa") -> Run:
    """An agent session that sent batches ``sent`` and closed; ``lost`` never reached the app."""
    assert ingest.open_run(open_message(node, stream, run=run)).status == "opened"
    for seq in sent:
        if seq not in lost:
            assert ingest.ingest_batch(simple_batch(node, seq=seq, run=run, stream=stream)).status == "stored"
    closing = close_message(node, stream, run=run, last_seq=sent[-1])
    body = closing["body"].replace('"samples_sent":10', f'"samples_sent":{len(sent) * SAMPLES}')
    assert ingest.close_run(close_message_with(node, body)).status == "closed"
    return Run.objects.get(name=run)


def close_message_with(node, body: str):
    return envelope(node, json.loads(body), kind="close_run")


def test_a_run_with_every_batch_is_complete():
    run = stream_with_gaps(register(), sent=range(6), lost=set())
    completeness = run_completeness(run)
    assert completeness.complete
    assert completeness.samples_declared == completeness.samples_stored == 6 * SAMPLES


def test_a_finished_run_missing_batches_says_which_and_how_many_samples():
    run = stream_with_gaps(register(), sent=range(10), lost={3, 7, 8, 9})
    assert run.status == Run.Status.FINISHED
    completeness = run_completeness(run)
    assert not completeness.complete
    assert (completeness.samples_declared, completeness.samples_stored) == (100, 60)
    [stream] = completeness.streams
    assert stream.missing_seqs == [(3, 3), (7, 9)] and stream.missing_text == "3, 7-9"
    assert stream.samples_missing == 40


def test_the_run_page_and_the_api_show_what_is_missing(client):
    run = stream_with_gaps(register(), sent=range(10), lost={3, 7, 8, 9})
    ana = member("ana", "vision")
    client.force_login(ana)
    page = client.get(f"/runs/{run.pk}/").content.decode()
    assert "Incomplete:" in page and "60 of 100 samples declared are stored" in page
    assert '<span class="missing-seqs">3, 7-9</span>' in page

    body = client.get(f"/api/runs/{run.pk}", headers={"Authorization": f"Bearer {issue_token(ana)}"}).json()
    assert body["completeness"]["complete"] is False
    assert body["completeness"]["samples_declared"] == 100 and body["completeness"]["samples_stored"] == 60
    assert body["completeness"]["streams"][0]["missing_seqs"] == [[3, 3], [7, 9]]


def test_a_late_redelivered_open_never_reopens_a_closed_session():
    node = register()
    run = stream_with_gaps(node, sent=range(2), lost=set())
    assert run.status == Run.Status.FINISHED
    late = ingest.open_run(open_message(node, "sa"))
    assert late.status == "duplicate"
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED and run.ended_at is not None
    # A new session of the same run (the job resumed) does open it again.
    assert ingest.open_run(open_message(node, "sb")).status == "opened"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING


def test_a_run_whose_agents_went_silent_is_interrupted_and_runs_again_when_they_return(settings):
    settings.WATTWISE_SILENT_AFTER_S = 600
    node = register()
    assert ingest.open_run(open_message(node, "sa")).status == "opened"
    assert ingest.ingest_batch(simple_batch(node, seq=0, run="big-run", stream="sa")).status == "stored"
    run = Run.objects.get()
    later = timezone.now() + timedelta(seconds=599)
    Run.objects.filter(pk=run.pk).update(created_at=timezone.now() - timedelta(hours=1))
    assert liveness.mark_silent_runs(now=later) == 0  # heard from 599 s before

    BatchReceipt.objects.update(received_at=timezone.now() - timedelta(seconds=601))
    assert liveness.mark_silent_runs() == 1
    run.refresh_from_db()
    assert run.status == Run.Status.INTERRUPTED
    [stream] = run_completeness(run).streams
    assert not stream.closed and stream.last_seq == 0 and stream.missing_seqs == []

    assert ingest.ingest_batch(simple_batch(node, seq=1, run="big-run", stream="sa")).status == "stored"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert liveness.mark_silent_runs() == 0


def test_one_group_of_batches_brings_back_every_interrupted_run_it_holds_in_one_statement():
    a, b = register("node-a"), register("node-b")
    coalesce.ingest_batches([simple_batch(a, seq=0, run="run-a"), simple_batch(b, seq=0, run="run-b")])
    Run.objects.update(status=Run.Status.INTERRUPTED)
    with CaptureQueriesContext(connection) as captured:
        outcomes = coalesce.ingest_batches([simple_batch(a, seq=1, run="run-a"), simple_batch(b, seq=1, run="run-b")])
    assert [o.status for o in outcomes] == ["stored", "stored"]
    assert set(Run.objects.values_list("status", flat=True)) == {Run.Status.RUNNING}
    assert sum(q["sql"].startswith('UPDATE "dashboard_run"') for q in captured.captured_queries) == 1


def test_finished_runs_are_never_marked_interrupted():
    run = stream_with_gaps(register(), sent=range(2), lost=set())
    Run.objects.update(created_at=timezone.now() - timedelta(days=1))
    BatchReceipt.objects.update(received_at=timezone.now() - timedelta(days=1))
    assert liveness.mark_silent_runs() == 0
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED
