"""Celery delivers at least once: the same batch delivered twice is stored once."""

from __future__ import annotations

import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import BatchReceipt, GpuMinute, Rejection, RunGpu, SampleWindow
from tests.factories import register, simple_batch

pytestmark = pytest.mark.django_db


def test_the_same_batch_delivered_twice_is_stored_once():
    node = register()
    message = simple_batch(node)
    assert ingest.ingest_batch(message).status == "stored"
    assert ingest.ingest_batch(message).status == "duplicate"
    assert SampleWindow.objects.count() == 1
    assert BatchReceipt.objects.count() == 1
    run_gpu = RunGpu.objects.get()
    assert run_gpu.samples == 10
    assert run_gpu.energy_j == pytest.approx(9 * 30.0)
    assert sum(GpuMinute.objects.values_list("samples", flat=True)) == 10
    assert not Rejection.objects.exists()


def test_batches_arriving_out_of_order_give_the_same_totals():
    node = register()
    messages = [simple_batch(node, seq=seq) for seq in range(4)]
    for message in reversed(messages):
        assert ingest.ingest_batch(message).status == "stored"
    run_gpu = RunGpu.objects.get()
    # 40 readings 30 J apart: 39 intervals, whatever order the windows landed in.
    assert run_gpu.energy_j == pytest.approx(39 * 30.0)
    assert run_gpu.samples == 40


def test_same_sequence_number_from_two_streams_is_two_batches():
    node = register()
    assert ingest.ingest_batch(simple_batch(node, stream="s1")).status == "stored"
    assert ingest.ingest_batch(simple_batch(node, stream="s2", uuid="GPU-2")).status == "stored"
    assert BatchReceipt.objects.count() == 2
