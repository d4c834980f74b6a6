"""Run energy comes from counter differences: exact across windows, resets and the power fallback."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command

from dashboard.runs.summaries import run_figures
from dashboard.telemetry import ingest
from dashboard.telemetry.models import GpuMinute, RunGpu
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, register
from wattwise_agent.wire import POWER_INTEGRATION

pytestmark = pytest.mark.django_db


def store(node, gpus, seq=0, run="run-1"):
    outcome = ingest.ingest_batch(envelope(node, batch_payload(gpus, seq=seq, run=run)))
    assert outcome.status == "stored", outcome.detail


def test_energy_is_the_counter_difference_not_the_counter_value():
    node = register()
    store(node, [gpu_entry("GPU-1", [T0_MS, T0_MS + 100, T0_MS + 200], [50_000_000, 50_000_400, 50_001_000])])
    assert RunGpu.objects.get().energy_j == pytest.approx(1.0)


def test_energy_between_windows_is_counted_once():
    node = register()
    store(node, [gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [1_000, 2_000])], seq=0)
    store(node, [gpu_entry("GPU-1", [T0_MS + 200, T0_MS + 300], [3_500, 4_000], prev=(T0_MS + 100, 2_000))], seq=1)
    # 1000 + 1500 + 500 mJ: the step from the first window's last reading is counted by the second window.
    assert RunGpu.objects.get().energy_j == pytest.approx(3.0)


def test_counter_reset_mid_run_counts_the_new_value_from_zero():
    node = register()
    store(node, [gpu_entry("GPU-1", [T0_MS + 100 * i for i in range(5)], [9_000, 10_000, 11_000, 400, 1_400])])
    # 1000 + 1000 + (reset: 400 counted from zero) + 1000; never a negative energy.
    assert RunGpu.objects.get().energy_j == pytest.approx(3.4)


def test_counter_reset_between_windows_counts_the_new_value_from_zero():
    node = register()
    store(node, [gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [70_000, 71_000])], seq=0)
    store(node, [gpu_entry("GPU-1", [T0_MS + 200, T0_MS + 300], [250, 1_250], prev=(T0_MS + 100, 71_000))], seq=1)
    assert RunGpu.objects.get().energy_j == pytest.approx(1.0 + 0.25 + 1.0)


def test_power_integration_fallback_is_counted_and_flagged_estimated():
    node = register()
    integrated = gpu_entry("GPU-old", [T0_MS, T0_MS + 1000, T0_MS + 2000], [0, 250_000, 500_000],
                           energy_source=POWER_INTEGRATION)
    counted = gpu_entry("GPU-new", [T0_MS, T0_MS + 1000], [0, 300_000], index=1)
    store(node, [integrated, counted])
    figures = run_figures(RunGpu.objects.first().run)
    by_uuid = {g.uuid: g for g in figures.gpus}
    assert by_uuid["GPU-old"].energy_j == pytest.approx(500.0)
    assert by_uuid["GPU-old"].estimated and not by_uuid["GPU-new"].estimated
    assert figures.estimated
    assert figures.energy_j == pytest.approx(800.0)


def test_run_total_is_the_sum_of_gpus_and_nodes_exactly():
    a, b = register("node-a"), register("node-b")
    store(a, [gpu_entry("GPU-a0", [T0_MS, T0_MS + 100], [0, 1_111]),
              gpu_entry("GPU-a1", [T0_MS, T0_MS + 100], [0, 2_222], index=1)])
    store(b, [gpu_entry("GPU-b0", [T0_MS, T0_MS + 100], [0, 3_333])])
    figures = run_figures(RunGpu.objects.first().run)
    assert figures.energy_j == pytest.approx(6.666)
    nodes = figures.by_node()
    assert nodes["node-a"]["energy_j"] + nodes["node-b"]["energy_j"] == figures.energy_j


def test_minute_rollups_add_up_to_the_gpu_total():
    node = register()
    t = [T0_MS + 59_800, T0_MS + 59_900, T0_MS + 60_000, T0_MS + 60_100]
    store(node, [gpu_entry("GPU-1", t, [0, 100, 250, 450])])
    minutes = dict(GpuMinute.objects.values_list("minute_ms", "energy_j"))
    assert minutes == {T0_MS: pytest.approx(0.1), T0_MS + 60_000: pytest.approx(0.35)}
    assert sum(minutes.values()) == pytest.approx(RunGpu.objects.get().energy_j)


def test_run_summary_command_prints_totals_keyed_by_gpu_uuid(capsys):
    node = register()
    store(node, [gpu_entry("GPU-1", [T0_MS, T0_MS + 100], [0, 2_000]),
                 gpu_entry("GPU-2", [T0_MS, T0_MS + 100], [0, 3_000], index=1)], run="llama")
    call_command("run_summary", "llama")
    summary = json.loads(capsys.readouterr().out)
    assert summary["energy_j"] == pytest.approx(5.0)
    assert summary["samples"] == 4
    assert summary["gpus"]["GPU-1"]["energy_j"] == pytest.approx(2.0)
    assert summary["gpus"]["GPU-2"]["energy_j"] == pytest.approx(3.0)
