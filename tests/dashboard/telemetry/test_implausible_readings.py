"""Through ingest, an impossible counter reading counts 0 J and is recorded, never stored as energy (issue 15,
item 2): the issue's two cases (a 1 mJ step back taken for a reset added 10,002,190 J; a 1e15 mJ jump in 100 ms
stored 1e12 J) leave the run's energy equal to the truth of its valid intervals."""

from __future__ import annotations

import json

import numpy as np
import pytest

from dashboard.telemetry import ingest
from dashboard.telemetry.models import BatchReceipt, GpuMinute, Rejection, RunGpu, SampleWindow
from tests.factories import T0_MS, RegisteredNode, batch_payload, envelope, gpu_entry, register
from wattwise_agent.run_energy import EnergyTally

pytestmark = pytest.mark.django_db

BASE_MJ = 10_000_000_000
STEP_MJ = 49_000  # 490 W, read every 100 ms: 1,470 J over 300 readings, as in the issue
SAMPLES, PER_BATCH = 301, 50
GLITCH = 137


def truth_mj() -> np.ndarray:
    return BASE_MJ + STEP_MJ * np.arange(SAMPLES, dtype=np.int64)


def send(node: RegisteredNode, readings: np.ndarray, **gpu_extra) -> list[ingest.Outcome]:
    """The readings as an agent streams them, in batches that each continue the previous one."""
    t_ms = T0_MS + 100 * np.arange(readings.size, dtype=np.int64)
    outcomes, payloads = [], []
    for seq, start in enumerate(range(0, readings.size, PER_BATCH)):
        end = min(start + PER_BATCH, readings.size)
        prev = (int(t_ms[start - 1]), int(readings[start - 1])) if start else None
        entry = gpu_entry("GPU-1", t_ms[start:end].tolist(), readings[start:end].tolist(), prev=prev,
                          power_mw=[490_000] * (end - start))
        entry.update(gpu_extra)
        payloads.append(batch_payload([entry], seq=seq))
        outcomes.append(ingest.ingest_batch(envelope(node, payloads[-1])))
    tally = EnergyTally()
    tally.add_batches(payloads)
    outcomes.append(tally.snapshot())  # the agent's own summary of what it sent, last
    return outcomes


def stored_energy_j() -> dict[str, float]:
    return {"run": RunGpu.objects.get().energy_j,
            "windows": sum(SampleWindow.objects.values_list("energy_j", flat=True)),
            "minutes": sum(GpuMinute.objects.values_list("energy_j", flat=True))}


@pytest.mark.parametrize("offset_mj", [-STEP_MJ - 1, 10**15], ids=["steps-back-1-mJ", "jumps-1e15-mJ"])
def test_an_impossible_counter_step_counts_0_J_is_recorded_and_the_run_keeps_the_truth(offset_mj: int) -> None:
    node = register("node-a")
    truth = truth_mj()
    readings = truth.copy()
    readings[GLITCH:] += offset_mj
    *outcomes, summary = send(node, readings)
    assert [o.status for o in outcomes] == ["stored"] * 7
    expected_j = (int(truth[-1] - truth[0]) - STEP_MJ) / 1000  # every interval but the broken one: 1,470 J - 49 J
    assert stored_energy_j() == pytest.approx({"run": expected_j, "windows": expected_j, "minutes": expected_j})
    assert summary.energy_j["GPU-1"] == pytest.approx(expected_j)  # the agent counts as the app does
    rejection = Rejection.objects.get()
    assert (rejection.reason_code, rejection.kind, rejection.node.name) == ("implausible", "batch", "node-a")
    assert f"the interval ending at {T0_MS + 100 * GLITCH} ms (100 ms)" in rejection.reason
    assert "counts 0 J" in rejection.reason and "1 implausible interval(s)" in outcomes[GLITCH // PER_BATCH].detail


def test_replaying_a_batch_with_an_implausible_interval_records_it_once() -> None:
    node = register("node-a")
    readings = truth_mj()[:20].copy()
    readings[10:] += 10**15
    message = envelope(node, batch_payload([gpu_entry("GPU-1", [T0_MS + 100 * i for i in range(20)],
                                                      readings.tolist())]))
    assert ingest.ingest_batch(message).status == "stored"
    assert ingest.ingest_batch(json.loads(json.dumps(message))).status == "duplicate"
    assert Rejection.objects.count() == 1 and BatchReceipt.objects.count() == 1
    assert RunGpu.objects.get().energy_j == pytest.approx(18 * STEP_MJ / 1000)


def test_a_driver_reload_to_near_zero_is_still_a_reset_counted_in_full() -> None:
    node = register("node-a")
    truth = truth_mj()
    readings = truth.copy()
    readings[GLITCH:] -= truth[GLITCH - 1]
    send(node, readings)
    assert stored_energy_j()["run"] == pytest.approx(int(truth[-1] - truth[0]) / 1000)
    assert not Rejection.objects.exists()


def test_the_gpu_s_power_limit_or_the_configured_ceiling_bounds_an_interval(settings) -> None:
    node = register("node-a")
    truth = truth_mj()
    readings = truth.copy()
    readings[GLITCH:] += 2 * 700 * 1100  # 15.4 kW for 100 ms: under twice 2 kW over 1.1 s, over twice 700 W
    send(node, readings, power_limit_mw=700_000)
    expected_j = (int(truth[-1] - truth[0]) - STEP_MJ) / 1000
    assert stored_energy_j()["run"] == pytest.approx(expected_j)
    assert Rejection.objects.get().reason_code == "implausible"

    settings.WATTWISE_MAX_GPU_POWER_W = 700.0  # a GPU that sends no limit: the ceiling applies
    other = register("node-b")
    send(other, readings)
    assert RunGpu.objects.get(gpu__node__name="node-b").energy_j == pytest.approx(expected_j)
