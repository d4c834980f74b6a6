"""A worker process remembers ids between batches (``dashboard.telemetry.ingest_memo``); a remembered id
whose row is gone costs one retry, never a batch; tasks run eagerly remember nothing."""

from __future__ import annotations

import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard.telemetry import ingest, ingest_memo, tasks
from dashboard.telemetry.ingest_memo import IngestMemo
from dashboard.telemetry.models import Gpu, Node, Run, RunGpu, SampleWindow
from tests.factories import register, simple_batch

LOOKED_UP = (Node, Run, Gpu)


def lookups_of_unchanging_rows(queries: list[dict[str, str]]) -> list[str]:
    """The SELECTs of nodes, runs and GPUs among ``queries``."""
    tables = "|".join(re.escape(model._meta.db_table) for model in LOOKED_UP)
    return [q["sql"] for q in queries if re.match(rf'\s*SELECT .* FROM "?({tables})"?\s', q["sql"], re.S)]


@pytest.mark.django_db
def test_with_a_memo_the_next_batch_looks_up_no_node_run_or_gpu():
    node = register("node-a")
    memo = IngestMemo()
    assert ingest.ingest_batch(simple_batch(node, seq=0), memo).status == "stored"
    with CaptureQueriesContext(connection) as remembered:
        assert ingest.ingest_batch(simple_batch(node, seq=1), memo).status == "stored"
    with CaptureQueriesContext(connection) as looked_up:
        assert ingest.ingest_batch(simple_batch(node, seq=2)).status == "stored"
    assert lookups_of_unchanging_rows(remembered.captured_queries) == []
    assert len(lookups_of_unchanging_rows(looked_up.captured_queries)) >= 3  # node, run, GPUs: no memo, no shortcut
    assert memo.run_ids == {(Run.objects.get().project_id, "run-1"): Run.objects.get().pk}
    assert RunGpu.objects.get().samples == 30


@pytest.mark.django_db(transaction=True)
def test_a_remembered_id_whose_row_is_gone_costs_one_retry_not_the_batch():
    node = register("node-a")
    memo = IngestMemo()
    first = ingest.ingest_batch(simple_batch(node, seq=0), memo)
    assert first.status == "stored"
    project_id = Run.objects.get().project_id
    Run.objects.all().delete()  # e.g. an admin deleted the run, and the node's GPU rows
    Gpu.objects.all().delete()
    assert memo.run_ids == {(project_id, "run-1"): first.run_id}  # stale now
    second = ingest.ingest_batch(simple_batch(node, seq=1), memo)
    assert second.status == "stored" and second.run_id != first.run_id
    run = Run.objects.get()
    assert run.pk == second.run_id and memo.run_ids == {(run.project_id, "run-1"): run.pk}
    assert memo.gpu_ids == {(Node.objects.get().pk, "GPU-1"): Gpu.objects.get().pk}
    assert SampleWindow.objects.get().seq == 1


@pytest.mark.django_db
def test_a_task_applied_eagerly_remembers_nothing(monkeypatch):
    def no_memo_here():
        raise AssertionError("an eager task must not use a worker's memo")

    monkeypatch.setattr(ingest_memo, "for_this_worker", no_memo_here)
    node = register("node-a")
    assert tasks.ingest_batch.apply(args=[simple_batch(node)], throw=True).get()["status"] == "stored"
    assert tasks.ingest_batch(simple_batch(node, seq=1))["status"] == "stored"  # called directly: no memo either


@pytest.mark.django_db
def test_a_task_a_worker_runs_uses_the_processs_memo(monkeypatch):
    monkeypatch.setattr(ingest_memo, "_worker_memo", None)
    node = register("node-a")
    task = tasks.ingest_batch
    task.push_request(called_directly=False, is_eager=False)  # as a worker's tracer runs it
    try:
        assert task.run(simple_batch(node))["status"] == "stored"
        assert task.run(simple_batch(node, seq=1))["status"] == "stored"
    finally:
        task.pop_request()
    memo = ingest_memo.for_this_worker()
    assert memo.run_ids == {(Run.objects.get().project_id, "run-1"): Run.objects.get().pk}
