"""An agent streams simulated GPUs and, beside them, CPU packages and DRAM from a fake RAPL tree, through the
real ingest path: the run page, summary, exports and API show CPU and DRAM as components of their own, with
the energy the counters counted (wrapping included), and what speaks of GPUs still shows GPUs only."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from django.urls import reverse

from dashboard.projects.tokens import issue_token
from dashboard.runs.summaries import with_totals
from dashboard.telemetry import ingest
from dashboard.telemetry.models import Gpu, Run, RunGpu
from planner.carbon.energy import run_energy_j
from tests.agents.fake_rapl import FakeRapl
from tests.api_world import Api
from tests.dashboard.runs.test_run_pages import figures_in
from tests.factories import T0_MS, member, register
from wattwise_agent.backends.rapl import RaplBackend
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.streamer import Streamer
from wattwise_agent.transport import CallableTransport

pytestmark = pytest.mark.django_db

NODE = "rapl-node"
TICKS = 300  # 30 s at 10 Hz
# Joules per 100 ms interval: 150 W and 120 W packages, 20 W and 15 W DRAM.
STEP_J = {"package-0": 15.0, "package-1": 12.0, "dram-0": 2.0, "dram-1": 1.5}
EXPECTED_J = {
    f"RAPL-{NODE}-package-0": TICKS * 15.0, f"RAPL-{NODE}-package-1": TICKS * 12.0,
    f"RAPL-{NODE}-package-0-dram": TICKS * 2.0, f"RAPL-{NODE}-package-1-dram": TICKS * 1.5,
}
CPU_J = TICKS * (15.0 + 12.0)
DRAM_J = TICKS * (2.0 + 1.5)
_INGEST = {"open_run": ingest.open_run, "batch": ingest.ingest_batch, "close_run": ingest.close_run}


def deliver(envelope: dict[str, Any]) -> None:
    outcome = _INGEST[envelope["kind"]](envelope)
    assert outcome.status != "rejected", outcome.detail


@pytest.fixture
def run(client, tmp_path: Path) -> tuple[Run, dict[str, float]]:
    node = register(NODE, "vision")
    # A 100 J range: every counter wraps several times over the run.
    tree = FakeRapl(tmp_path / "powercap", packages=2, max_energy_range_uj=100_000_000, start_uj=95_000_000)
    zones = {"package-0": tree.zone(0), "package-1": tree.zone(1), "dram-0": tree.zone(0, "dram"),
             "dram-1": tree.zone(1, "dram")}
    gpus = SimulatedBackend(2, node=NODE, seed=3)
    clock = VirtualClock(T0_MS)
    streamer = Streamer(gpus, CallableTransport(deliver), run="with-cpu", token=node.token, node=NODE, clock=clock,
                        threaded=False, node_energy=RaplBackend(NODE, root=tree.root))
    streamer.open()
    for k in range(TICKS + 1):
        clock.sleep_until(T0_MS + 100 * k)
        if k:
            for name, zone in zones.items():
                tree.add_uj(zone, round(STEP_J[name] * 1_000_000))
        streamer.tick()
    streamer.close()
    client.force_login(member("ana", "vision"))
    return Run.objects.get(name="with-cpu"), gpus.ground_truth_energy_j()


def test_cpu_and_dram_are_stored_as_components_with_the_energy_their_counters_counted(run):
    the_run, gpu_truth = run
    stored = {rg.gpu.uuid: (rg.gpu.component, rg.energy_j) for rg in RunGpu.objects.filter(run=the_run)
              .select_related("gpu")}
    for uuid, energy_j in EXPECTED_J.items():
        component = "dram" if uuid.endswith("-dram") else "cpu"
        assert stored[uuid] == (component, pytest.approx(energy_j, abs=1e-3))
    for uuid, energy_j in gpu_truth.items():
        assert stored[uuid][0] == "gpu" and stored[uuid][1] == pytest.approx(energy_j, abs=2e-3)
    # Emissions follow the run's energy: every component's.
    assert run_energy_j(the_run) == pytest.approx(sum(gpu_truth.values()) + CPU_J + DRAM_J, abs=1e-2)


def test_the_run_page_shows_cpu_and_dram_as_separate_components(client, run):
    the_run, gpu_truth = run
    html = client.get(reverse("run", args=[the_run.pk])).content.decode()
    cards = {m[0]: m[1] for m in re.findall(
        r'id="card-energy-(\w+)"><div class="label">\w+ energy</div><div class="value">[^<]*</div>\s*'
        r'<div class="sub">([\d,]+) J', html)}
    assert cards == {"gpu": f"{sum(gpu_truth.values()):,.0f}", "cpu": f"{CPU_J:,.0f}", "dram": f"{DRAM_J:,.0f}"}
    total = sum(gpu_truth.values()) + CPU_J + DRAM_J
    assert re.search(rf'id="card-energy">.*?<div class="sub">{total:,.0f} J · GPUs, CPU and DRAM', html, re.S)
    components = re.search(r'id="components-table">(.*?)</table>', html, re.S)
    assert components is not None
    assert re.findall(r'data-component="(\w+)"', components.group(1)) == ["cpu", "dram", "cpu", "dram"]
    for uuid in EXPECTED_J:
        assert uuid in components.group(1)
    gpu_table = re.search(r'id="gpus-table">(.*?)</table>', html, re.S)
    assert gpu_table is not None and "RAPL-" not in gpu_table.group(1)
    assert len(re.findall(r"<tr>", gpu_table.group(1))) == 1 + 2  # header and the two GPUs
    figures = figures_in(html)
    assert len(figures["chart-power"]["data"]) == 2  # GPUs only
    assert "GPU-hours" in html and ">2 GPUs on 1 node<" in html.replace("</div>", "<")


def test_a_cpu_device_page_draws_power_and_energy_but_no_gpu_clock(client, run):
    the_run, _ = run
    package = RunGpu.objects.get(run=the_run, gpu__uuid=f"RAPL-{NODE}-package-0")
    html = client.get(reverse("run_gpu", args=[the_run.pk, package.pk])).content.decode()
    assert set(figures_in(html)) == {"chart-power", "chart-energy"}
    assert "mean between RAPL readings" in html


def test_summary_exports_and_api_say_which_component_each_device_is(client, run):
    the_run, gpu_truth = run
    summary = json.loads(client.get(reverse("run_summary", args=[the_run.pk])).content)
    assert set(summary["gpus"]) == set(gpu_truth)
    assert {uuid: d["component"] for uuid, d in summary["devices"].items()} == {
        **{uuid: "gpu" for uuid in gpu_truth},
        **{uuid: "dram" if uuid.endswith("-dram") else "cpu" for uuid in EXPECTED_J},
    }
    assert summary["components"]["cpu"]["energy_j"] == pytest.approx(CPU_J, abs=1e-2)
    assert summary["components"]["dram"]["energy_j"] == pytest.approx(DRAM_J, abs=1e-2)
    assert summary["components"]["gpu"]["devices"] == 2
    assert summary["energy_j"] == pytest.approx(sum(gpu_truth.values()) + CPU_J + DRAM_J, abs=1e-2)
    assert summary["gpu_hours"] == pytest.approx(2 * TICKS / 10 / 3600)

    body = client.get(reverse("run_summary_csv", args=[the_run.pk])).content.decode()
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(r["scope"] for r in rows) == ["cpu", "cpu", "dram", "dram", "gpu", "gpu", "total"]
    assert all(r["gpu_hours"] == "" for r in rows if r["scope"] in ("cpu", "dram"))

    api = Api(client, issue_token(the_run.project.members.get()))
    detail = api.get(f"/runs/{the_run.pk}").json()
    assert detail["gpus"] == 2
    assert [(c["component"], c["devices"]) for c in detail["components"]] == [("gpu", 2), ("cpu", 2), ("dram", 2)]
    devices = api.get(f"/runs/{the_run.pk}/gpus").json()
    assert sorted(d["component"] for d in devices) == ["cpu", "cpu", "dram", "dram", "gpu", "gpu"]
    assert with_totals(Run.objects.filter(pk=the_run.pk)).get().gpu_count == 2


def test_devices_stored_before_components_are_gpus():
    assert Gpu._meta.get_field("component").default == Gpu.Component.GPU
