"""Agents open and close runs; a run spans many nodes and finishes when every node has closed it."""

from __future__ import annotations

import threading

import pytest
from django.db import connection

from dashboard.telemetry import ingest
from dashboard.telemetry.models import Rejection, Run, RunNode
from tests.factories import T0_MS, envelope, register, simple_batch

pytestmark = pytest.mark.django_db


def open_message(node, stream, run="big-run", tags=("llm",)):
    return envelope(node, {"run": run, "stream": stream, "started_ms": T0_MS, "simulated": False,
                           "backend": "nvml", "host": node.name, "tags": list(tags), "gpus": []}, kind="open_run")


def close_message(node, stream, run="big-run", last_seq=0):
    return envelope(node, {"run": run, "stream": stream, "ended_ms": T0_MS + 60_000, "last_seq": last_seq,
                           "samples_sent": 10}, kind="close_run")


def test_a_run_spans_nodes_and_finishes_when_all_have_closed():
    a, b = register("node-a"), register("node-b")
    assert ingest.open_run(open_message(a, "sa")).status == "opened"
    assert ingest.open_run(open_message(b, "sb", tags=("llm", "nightly"))).status == "opened"
    run = Run.objects.get()
    assert sorted(run.tags.values_list("name", flat=True)) == ["llm", "nightly"]
    assert ingest.close_run(close_message(a, "sa")).status == "closed"
    run.refresh_from_db()
    assert run.status == Run.Status.RUNNING
    assert ingest.close_run(close_message(b, "sb")).status == "closed"
    run.refresh_from_db()
    assert run.status == Run.Status.FINISHED and run.ended_at is not None
    assert RunNode.objects.filter(run=run).count() == 2


def test_batches_may_arrive_before_the_open_message():
    node = register()
    assert ingest.ingest_batch(simple_batch(node, run="big-run", stream="sa")).status == "stored"
    assert ingest.open_run(open_message(node, "sa")).status == "opened"
    assert Run.objects.count() == 1
    assert RunNode.objects.count() == 1


def test_unsigned_open_message_changes_nothing():
    node = register()
    message = open_message(node, "sa")
    message["sig"] = "0" * 64
    assert ingest.open_run(message).status == "rejected"
    assert not Run.objects.exists()
    assert Rejection.objects.get().kind == Rejection.Kind.OPEN_RUN


def close_together(nodes, run: str) -> list[str]:
    """Every node closes its session of ``run`` at the same moment, each in its own thread and connection."""
    barrier = threading.Barrier(len(nodes))
    outcomes: list[str] = []

    def close(k: int, node) -> None:
        try:
            barrier.wait()
            outcomes.append(ingest.close_run(close_message(node, f"s{k}", run=run)).status)
        finally:
            connection.close()

    threads = [threading.Thread(target=close, args=(k, node)) for k, node in enumerate(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return outcomes


@pytest.mark.services  # concurrent writers: PostgreSQL
@pytest.mark.django_db(transaction=True)
def test_sessions_closing_at_the_same_moment_finish_the_run():
    """The ranks of one job close together; whichever commits last must see every session closed."""
    nodes = [register(f"rank-{k}") for k in range(4)]
    for round_ in range(8):  # bounded: enough rounds that an unlocked check lost at least one before
        name = f"job-{round_}"
        for k, node in enumerate(nodes):
            assert ingest.open_run(open_message(node, f"s{k}", run=name)).status == "opened"
        assert close_together(nodes, name) == ["closed"] * len(nodes)
        assert Run.objects.get(name=name).status == Run.Status.FINISHED, name
