"""Two agent sessions recording the same GPU at once (a misconfiguration that ingest still stores): a range
that starts inside a window of each shows both windows' samples on the pages, in the export and in the API;
the GPU's energy is counted once, every figure derived from it agrees, and the pages say so."""

from __future__ import annotations

import csv
import io

import numpy as np
import pytest
from django.urls import reverse

from dashboard.projects.tokens import issue_token
from dashboard.telemetry import ingest
from dashboard.telemetry.models import GpuMinute, Run, RunGpu, SampleWindow
from tests.api_world import Api
from tests.dashboard.runs.test_run_pages import figures_in, j_per_unit, values
from tests.factories import T0_MS, batch_payload, envelope, gpu_entry, member, register

pytestmark = pytest.mark.django_db

# Stream "a" sends 1 s windows at 100 W from T0; stream "b" 1.5 s windows at 300 W from T0 + 50 ms.
# The range starts inside a's second window (from T0 + 1000) and b's first one (from T0 + 50): b's
# straddling window starts long before the latest window that starts before the range.
FROM_MS = T0_MS + 1_250
TO_MS = T0_MS + 2_000  # inclusive
A_TIMES = list(range(T0_MS + 1_300, T0_MS + 2_001, 100))
B_TIMES = list(range(T0_MS + 1_250, T0_MS + 2_000, 100))


def send(node, stream: str, *, start_ms: int, samples: int, windows: int, power_mw: int) -> None:
    for seq in range(windows):
        t_ms = [start_ms + (seq * samples + i) * 100 for i in range(samples)]
        energy_mj = [5_000_000 + power_mw // 10 * (seq * samples + i) for i in range(samples)]
        prev = (t_ms[0] - 100, energy_mj[0] - power_mw // 10) if seq else None
        entry = gpu_entry("GPU-1", t_ms, energy_mj, power_mw=[power_mw] * samples, prev=prev)
        message = envelope(node, batch_payload([entry], run="twice", stream=stream, seq=seq))
        assert ingest.ingest_batch(message).status == "stored"


@pytest.fixture
def run(client) -> Run:
    node = register("node-a", "vision")
    send(node, "a", start_ms=T0_MS, samples=10, windows=4, power_mw=100_000)
    send(node, "b", start_ms=T0_MS + 50, samples=15, windows=3, power_mw=300_000)
    client.force_login(member("ana", "vision"))
    return Run.objects.get(name="twice")


def test_the_api_returns_the_samples_of_both_straddling_windows(client, run):
    run_gpu = RunGpu.objects.get(run=run)
    api = Api(client, issue_token(run.project.members.get()))
    page = api.get(f"/runs/{run.pk}/gpus/{run_gpu.pk}/samples", from_ms=FROM_MS, to_ms=TO_MS).json()
    assert page["t_ms"] == sorted(A_TIMES + B_TIMES)
    assert sorted(zip(page["t_ms"], page["power_mw"], strict=True)) == sorted(
        [(t, 100_000) for t in A_TIMES] + [(t, 300_000) for t in B_TIMES]
    )


def test_the_export_holds_the_samples_of_both_straddling_windows(client, run):
    response = client.get(reverse("run_samples_csv", args=[run.pk]), {"from": FROM_MS, "to": TO_MS + 1})
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert sorted((int(r["t_ms"]), float(r["power_w"])) for r in rows) == sorted(
        [(t, 100.0) for t in A_TIMES] + [(t, 300.0) for t in B_TIMES]
    )


@pytest.mark.parametrize("page", ["run", "run_gpu"])
def test_the_pages_draw_the_samples_of_both_straddling_windows(client, run, page):
    run_gpu = RunGpu.objects.get(run=run)
    args = [run.pk] if page == "run" else [run.pk, run_gpu.pk]
    html = client.get(reverse(page, args=args), {"from": str(FROM_MS), "to": str(TO_MS)}).content.decode()
    mean = figures_in(html)["chart-power"]["data"][-1]  # the run page's only line; the GPU page's mean
    # 100 ms buckets from FROM_MS: each holds one reading of each stream, so every mean is (100 + 300) / 2.
    assert list(values(mean["x"]).astype(np.int64)) == list(range(FROM_MS, TO_MS + 1, 100))
    assert np.allclose(values(mean["y"]), 200.0)


def test_the_pages_the_summary_and_the_api_say_the_gpu_was_read_twice_at_once_and_counted_once(client, run):
    run_gpu = RunGpu.objects.get(run=run)
    # Read by both from b's first reading (T0 + 50) to a's last (T0 + 3_900).
    assert (run_gpu.streams, run_gpu.overlap_ms) == (2, 3_850)
    flag = "read by 2 streams, 4 s at once: counted once"
    run_page = client.get(reverse("run", args=[run.pk])).content.decode()
    assert flag in run_page and 'id="counted-once-note"' in run_page
    assert "GPUs read by several streams counted once" in run_page  # the energy card
    assert flag in client.get(reverse("run_gpu", args=[run.pk, run_gpu.pk])).content.decode()
    summary = client.get(reverse("run_summary", args=[run.pk])).json()
    assert summary["overlapped"] is True
    assert (summary["gpus"]["GPU-1"]["streams"], summary["gpus"]["GPU-1"]["overlap_s"]) == (2, 3.85)
    api = Api(client, issue_token(run.project.members.get()))
    row = api.get(f"/runs/{run.pk}/gpus/{run_gpu.pk}").json()
    assert (row["streams"], row["overlap_s"]) == (2, 3.85)


def test_a_gpu_read_by_one_stream_at_a_time_is_not_flagged(client):
    node = register("node-b", "vision")
    send(node, "before", start_ms=T0_MS, samples=10, windows=2, power_mw=100_000)
    send(node, "after-restart", start_ms=T0_MS + 5_000, samples=10, windows=2, power_mw=100_000)
    client.force_login(member("bo", "vision"))
    run = Run.objects.get(name="twice")
    run_page = client.get(reverse("run", args=[run.pk])).content.decode()
    assert "counted once" not in run_page
    assert client.get(reverse("run_summary", args=[run.pk])).json()["overlapped"] is False


def test_every_figure_derived_from_a_gpu_read_twice_agrees_with_its_total(client, run):
    total_j = RunGpu.objects.get(run=run).energy_j
    assert sum(SampleWindow.objects.values_list("energy_j", flat=True)) == pytest.approx(total_j, rel=1e-12)
    assert sum(GpuMinute.objects.values_list("energy_j", flat=True)) == pytest.approx(total_j, rel=1e-12)
    assert client.get(reverse("run_summary", args=[run.pk])).json()["energy_j"] == pytest.approx(total_j)
    minutes = csv_rows(client, "run_samples_csv", run.pk, resolution="minute")
    assert sum(float(row["energy_j"]) for row in minutes) == pytest.approx(total_j, rel=1e-9)
    assert float(csv_rows(client, "run_summary_csv", run.pk)[0]["energy_j"]) == pytest.approx(total_j, rel=1e-9)
    # The raw-window charts: a range over the whole run (short, so drawn from the windows) sums to the total.
    html = client.get(reverse("run", args=[run.pk]), {"from": str(T0_MS - 1_000), "to": str(T0_MS + 10_000)})
    chart = figures_in(html.content.decode())["chart-energy-per-gpu"]
    assert values(chart["data"][0]["y"])[0] * j_per_unit(chart) == pytest.approx(total_j, rel=1e-9)
    # /metrics, for a run still streaming.
    api_token = issue_token(run.project.members.get())
    metrics = client.get(reverse("metrics"), headers={"Authorization": f"Bearer {api_token}"}).content.decode()
    line = next(x for x in metrics.splitlines() if x.startswith("wattwise_run_energy_joules_total{"))
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(total_j, rel=1e-9)


def csv_rows(client, name: str, *args, **params) -> list[dict[str, str]]:
    response = client.get(reverse(name, args=args), params)
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return list(csv.DictReader(io.StringIO(body.decode())))
