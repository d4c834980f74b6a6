"""The bulk path stores a run exactly as ingesting the batches an agent would send stores it.

The reference is the real thing: the agent's Batcher cuts the readings into batches, they are signed and
go through ``dashboard.telemetry.ingest`` (open_run, ingest_batch, close_run). Then the same readings go through
``dashboard.telemetry.bulkload`` and every stored field must be equal: floats bit for bit, blobs byte for byte.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from django.core.management import call_command

from dashboard.demo.fleet_trace import TraceSpec
from dashboard.telemetry import ingest
from dashboard.telemetry.bulkload import BulkLoadError, RunSpec, load_run
from dashboard.telemetry.models import BatchReceipt, Gpu, GpuMinute, Node, Run, RunGpu, RunNode, SampleWindow
from dashboard.telemetry.window_figures import MINUTE_COLUMNS
from tests.factories import envelope, register
from wattwise_agent.backends.base import GpuInfo
from wattwise_agent.batcher import Batcher
from wattwise_agent.sampler import Sample

pytestmark = pytest.mark.django_db

MINUTE_MS = 60_000


def a_day_ago_ms(offset_ms: int = 0) -> int:
    return (int(time.time() * 1000) - 86_400_000) // MINUTE_MS * MINUTE_MS + offset_ms


def small_trace(offset_ms: int, **extra: Any) -> TraceSpec:
    """2 nodes × 2 GPUs × 10 minutes at 10 Hz, in 2-minute chunks so state must carry across chunks."""
    return TraceSpec(nodes=("bulk-n0", "bulk-n1"), gpus_per_node=2, start_ms=a_day_ago_ms(offset_ms),
                     duration_ms=10 * MINUTE_MS, seed=7, chunk_ms=2 * MINUTE_MS, **extra)


def ingest_as_agents_would(trace: TraceSpec, spec: RunSpec) -> None:
    """Feed the readings tick by tick to each node's Batcher and ingest the signed batches."""
    chunks = list(trace.chunks())
    for n, node in enumerate(spec.nodes):
        registered = register(node.name, spec.project)
        gpus = [chunk.readings[n] for chunk in chunks]
        columns = [{name: np.concatenate([c[g].column(name) for c in gpus]) for name in Sample.__dataclass_fields__}
                   for g in range(len(node.gpus))]
        infos = [GpuInfo(g.index, g.uuid, g.name, g.energy_source, g.power_field) for g in node.gpus]
        batcher = Batcher(run=spec.run, stream=node.stream, simulated=True, gpus=infos)
        ticks = columns[0]["t_ms"].tolist()
        opened = ingest.open_run(envelope(registered, {
            "run": spec.run, "stream": node.stream, "started_ms": ticks[0], "simulated": True,
            "backend": node.backend, "host": node.host, "tags": list(spec.tags),
        }, kind="open_run"))
        assert opened.status == "opened", opened.detail
        payloads: list[dict[str, Any]] = []
        for k, t in enumerate(ticks):
            samples = [Sample(**{name: int(c[name][k]) for name in Sample.__dataclass_fields__}) for c in columns]
            payloads += batcher.add_samples(t, samples, final=k == len(ticks) - 1)
        payloads += batcher.flush(ticks[-1])
        for payload in payloads:
            outcome = ingest.ingest_batch(envelope(registered, payload))
            assert outcome.status == "stored", outcome.detail
        closed = ingest.close_run(envelope(registered, {
            "run": spec.run, "stream": node.stream, "ended_ms": ticks[-1], "last_seq": batcher.next_seq - 1,
            "samples_sent": sum(len(p["t_ms"]) for payload in payloads for p in payload["gpus"]),
        }, kind="close_run"))
        assert closed.status == "closed", closed.detail


def stored(project: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Everything a run's ingest writes, keyed by what identifies it (never by row ids)."""
    runs = Run.objects.filter(project__name=project)
    return {
        "run": {r.name: (r.status, r.simulated, r.started_at, r.ended_at, tuple(r.tags.values_list("name", flat=True)))
                for r in runs},
        "run_nodes": {(rn.node.name, rn.stream): (rn.backend, rn.host, rn.opened_at, rn.closed_at, rn.last_seq,
                                                  rn.samples_declared, rn.zone, rn.region)
                      for rn in RunNode.objects.filter(run__in=runs).select_related("node")},
        "gpus": {g.uuid: (g.node.name, g.index, g.name, g.energy_source, g.power_field, g.simulated)
                 for g in Gpu.objects.filter(node__project__name=project).select_related("node")},
        "run_gpus": {rg.gpu.uuid: (rg.energy_j, rg.samples, rg.power_sum_w, rg.peak_power_w, rg.first_ms, rg.last_ms,
                                   rg.estimated, rg.first_stream, rg.shared, rg.streams, rg.overlap_ms, rg.max_window_ms)
                     for rg in RunGpu.objects.filter(run__in=runs).select_related("gpu")},
        "minutes": {(m.run_gpu.gpu.uuid, m.minute_ms): tuple(getattr(m, column) for column in MINUTE_COLUMNS[2:])
                    for m in GpuMinute.objects.filter(run_gpu__run__in=runs).select_related("run_gpu__gpu")},
        "windows": {(w.run_gpu.gpu.uuid, w.stream, w.seq): (
                        w.first_ms, w.last_ms, w.samples, w.energy_j, w.prev_t_ms, w.prev_energy_mj, bytes(w.readings))
                    for w in SampleWindow.objects.filter(run_gpu__run__in=runs).select_related("run_gpu__gpu")},
        "receipts": {(b.node.name, b.stream, b.seq): (b.run.name, b.body_sha256, b.samples)
                     for b in BatchReceipt.objects.filter(run__in=runs).select_related("node", "run")},
    }


def assert_same(expected: dict[str, dict[Any, Any]], actual: dict[str, dict[Any, Any]]) -> None:
    for table, rows in expected.items():
        assert rows, f"nothing stored in {table}"
        assert sorted(actual[table]) == sorted(rows), f"{table}: different rows"
        for key, values in rows.items():
            assert actual[table][key] == values, f"{table} {key}: ingest stored {values}, bulk {actual[table][key]}"


@pytest.mark.parametrize(
    "offset_ms, extra",
    [
        pytest.param(1_234, {}, id="agents-start-mid-window"),
        # Nodes start exactly on a minute, so each final reading lands on a window (and minute) boundary
        # and closes the last window; one GPU's counter is reset by a driver reload along the way.
        pytest.param(0, {"stagger_ms": 1, "reset": (1, 0, 6 * MINUTE_MS + 2_345)}, id="final-reading-on-boundary"),
    ],
)
def test_a_bulk_loaded_run_is_stored_exactly_as_ingesting_its_batches_stores_it(offset_ms, extra):
    trace = small_trace(offset_ms, **extra)
    spec = trace.run_spec("bulk", "fleet-small", tags=("bench",))
    ingest_as_agents_would(trace, spec)
    via_ingest = stored("bulk")
    Run.objects.filter(project__name="bulk").delete()
    Node.objects.filter(project__name="bulk").delete()  # the bulk path registers nodes and GPUs itself

    result = load_run(spec, trace.chunks())

    assert result.samples == trace.samples == sum(v[1] for v in via_ingest["run_gpus"].values())
    assert result.batches == len(via_ingest["receipts"])
    assert_same(via_ingest, stored("bulk"))


def test_the_synthetic_counter_is_the_integral_of_the_reported_power():
    trace = small_trace(1_234)
    gpu = [chunk.readings[0][1] for chunk in trace.chunks()]
    t, energy, power = (np.concatenate([g.column(name) for g in gpu]) for name in ("t_ms", "energy_mj", "power_mw"))
    assert t.size == trace.samples_per_gpu and np.all(np.diff(t) > 0)
    integral_mj = np.cumsum(power[1:] * np.diff(t)) / 1000  # mW × ms = µJ
    # Floored to whole mJ, the counter never drifts from the integral by a millijoule or more.
    assert np.max(np.abs((energy[1:] - energy[0]) - integral_mj)) < 1.0
    assert power.min() < 100_000 < 600_000 < power.max() < 725_000  # idle start, training, the cap


def test_loading_a_run_that_exists_is_refused_unless_it_replaces_it():
    trace = small_trace(1_234)
    spec = trace.run_spec("bulk", "twice")
    load_run(spec, trace.chunks())
    with pytest.raises(BulkLoadError, match="already exists"):
        load_run(spec, trace.chunks())
    again = load_run(spec, trace.chunks(), replace=True)
    assert Run.objects.get(name="twice").pk == again.run_id
    assert SampleWindow.objects.filter(run_gpu__run__name="twice").count() == again.windows


def test_readings_from_the_future_are_refused_and_nothing_is_stored():
    trace = TraceSpec(nodes=("bulk-n0",), gpus_per_node=1, start_ms=int(time.time() * 1000) + 3_600_000,
                      duration_ms=MINUTE_MS)
    with pytest.raises(BulkLoadError, match="future"):
        load_run(trace.run_spec("bulk", "ahead"), trace.chunks())
    assert not Run.objects.filter(name="ahead").exists() and not Node.objects.filter(name="bulk-n0").exists()


def test_the_command_loads_a_synthetic_run_of_the_asked_shape(capsys):
    call_command("bulk_load_run", "cmd-run", "--project", "bulk-cmd", "--nodes", "2", "--gpus", "3",
                 "--duration", "2m", "--ends-ago", "1h", "--quiet")
    run = Run.objects.get(project__name="bulk-cmd", name="cmd-run")
    assert run.status == Run.Status.FINISHED and run.simulated
    assert run.run_gpus.count() == 6
    assert sum(run.run_gpus.values_list("samples", flat=True)) == 6 * (2 * 60 * 10 + 1)
    assert "cmd-run" in capsys.readouterr().out
