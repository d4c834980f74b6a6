"""A worker killed mid-batch loses nothing: late acks put the message back, and ingest is idempotent."""

from __future__ import annotations

import pytest
import redis
from django.db import connection

from dashboard.telemetry.models import BatchReceipt, RunGpu, SampleWindow
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register
from tests.worker_process import flush, kill_hard, publisher, wait_until, worker
from wattwise_agent.wire import TASK_INGEST_BATCH, TELEMETRY_QUEUE

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.processes]

GPUS, SAMPLES, BATCHES = 32, 1500, 48  # enough batches that polling catches one being written
STEP_MJ = 25_000


def big_batch(node, seq: int) -> dict:
    """32 GPUs × 1,500 readings: big enough that a kill lands while a batch is being written."""
    t0 = T0_MS + seq * SAMPLES * 100
    gpus = []
    for g in range(GPUS):
        start = 10_000_000 * g + seq * SAMPLES * STEP_MJ
        energy = [start + STEP_MJ * i for i in range(SAMPLES)]
        prev = (t0 - 100, start - STEP_MJ) if seq else None
        gpus.append(gpu_entry(f"GPU-{g}", [t0 + 100 * i for i in range(SAMPLES)], energy, index=g, prev=prev))
    return envelope(node, batch_payload(gpus, run="killed", seq=seq))


def worker_inside_a_transaction() -> bool:
    """True while another session (the worker) has a transaction open: it is writing a batch."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND xact_start IS NOT NULL"
        )
        return cursor.fetchone()[0] > 0


def test_a_worker_killed_mid_batch_loses_nothing(postgres, redis_url):
    flush(redis_url)
    node = register()
    client = publisher(redis_url)
    for seq in range(BATCHES):
        client.send_task(TASK_INGEST_BATCH, args=[big_batch(node, seq)], queue=TELEMETRY_QUEUE)

    with worker(redis_url, visibility_timeout_s=2) as first:
        wait_until(lambda: BatchReceipt.objects.count() >= 3 and worker_inside_a_transaction(), 120,
                   "the worker to be writing a batch", first)
        kill_hard(first)
    stored_before_kill = BatchReceipt.objects.count()
    assert stored_before_kill < BATCHES, "the worker finished before it could be killed"
    # The batch it was writing was taken from the queue but never acknowledged.
    assert redis.Redis.from_url(redis_url).hlen("unacked") >= 1

    with worker(redis_url, visibility_timeout_s=2) as second:
        wait_until(lambda: BatchReceipt.objects.count() == BATCHES, 180, "every batch", second)

    assert SampleWindow.objects.count() == BATCHES * GPUS
    for run_gpu in RunGpu.objects.all():
        assert run_gpu.samples == BATCHES * SAMPLES
        # Every interval between consecutive readings, once: (readings − 1) × step.
        assert run_gpu.energy_j == pytest.approx((BATCHES * SAMPLES - 1) * STEP_MJ / 1000, rel=1e-12)
