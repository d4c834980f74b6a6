"""A run measured on a real NVIDIA H200 (examples/hardware_check.py on the device machine, 2026-12-04: 1,500
training steps of an MLP under a Tracker, NVML's total-energy counter read directly around the same span)
uploads into the app, which stores the energy the agent measured, within 1 % of NVML's own counter."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from dashboard.telemetry.models import Rejection, Run, RunGpu
from tests.e2e.data import HANDLERS
from tests.factories import register
from wattwise_agent.run_file import read_run_file
from wattwise_agent.run_upload import upload_run_file
from wattwise_agent.transport import CallableTransport

pytestmark = pytest.mark.django_db

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_run_file_from_a_real_h200_stores_the_energy_nvmls_counter_saw(tmp_path):
    report = json.loads((FIXTURES / "h200_hardware_check.json").read_text())
    path = tmp_path / "h200.jsonl"
    path.write_bytes(gzip.decompress((FIXTURES / "h200_hardware_check.jsonl.gz").read_bytes()))
    recording = read_run_file(path)
    assert recording.runs == ["hardware-check"] and recording.unclosed == []

    node = register("vm", "hardware")  # the device machine's host name, as the agent recorded it
    uploaded = upload_run_file(path, CallableTransport(lambda e: HANDLERS[e["kind"]](e)), token=node.token)

    assert uploaded.complete and not Rejection.objects.exists()
    run = Run.objects.get(name="hardware-check")
    assert run.status == Run.Status.FINISHED and not run.simulated
    [stored] = RunGpu.objects.filter(run=run)
    assert stored.gpu.uuid == report["gpu"]["uuid"] and stored.gpu.name == "NVIDIA H200"
    # What the agent measured (the Tracker's summary, printed to 0.1 J) is what the app stores ...
    assert stored.energy_j == pytest.approx(report["energy"]["tracker_j"], abs=0.1)
    # ... and NVML's counter, read by the check itself around the Tracker, agrees within a sampling edge.
    assert stored.energy_j == pytest.approx(report["energy"]["nvml_counter_j"], rel=0.01)
