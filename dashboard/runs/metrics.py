"""Prometheus exposition of what the database holds, scoped to one user's projects.

Nothing here counts in process memory: every value is read from the database at scrape time, so any
number of web processes answer the same figures and a restart resets nothing. A scrape builds a fresh
``CollectorRegistry`` around a ``WattwiseCollector`` for the scraping user, and costs four queries
whatever the number of runs and GPUs (each GPU's latest window is found with an index lookup inside
the one query that reads the GPUs).

Per-GPU and per-run series exist only while a run is ``running``: finished runs would otherwise pile up
series forever. Their energy stays in ``wattwise_project_energy_joules_total``. Counters are running
totals of stored rows; deleting runs or nodes lowers them, which Prometheus treats as a counter reset.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from datetime import datetime

from django.db.models import Count, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector, CollectorRegistry

from dashboard.projects.models import Project, Visitor
from dashboard.telemetry import columns
from dashboard.telemetry.models import Gpu, Node, Rejection, Run, RunGpu, SampleWindow
from planner.units import MILLIWATTS_PER_W, MS_PER_S

GPU_LABELS = ["project", "run", "node", "gpu", "uuid"]
NODE_LABELS = ["project", "node"]


def exposition(user: Visitor, accept: str = "") -> tuple[bytes, str]:
    """The scrape body and its content type (Prometheus text, or OpenMetrics when the scraper asks)."""
    registry = CollectorRegistry()
    registry.register(WattwiseCollector(user))
    encoder, content_type = choose_encoder(accept)
    return encoder(registry), content_type


class WattwiseCollector(Collector):
    """Collects the metrics for ``user``: only projects they are a member of, as on every page.

    Rejections from nodes nobody registered belong to no project; only staff see them, counted under
    ``project=""`` and ``node=""`` (the name such a message claims is the sender's choice, and would let
    anyone create series at will).
    """

    def __init__(self, user: Visitor, now: datetime | None = None) -> None:
        self.user = user
        self.now = now

    def collect(self) -> Iterator[Metric]:
        now_s = (self.now or timezone.now()).timestamp()
        projects = list(
            Project.objects.for_user(self.user)
            .annotate(
                active_runs=Count("runs", filter=Q(runs__status=Run.Status.RUNNING), distinct=True),
                energy_j=Sum("runs__run_gpus__energy_j"),
            )
            .values_list("pk", "name", "active_runs", "energy_j")
        )
        names = {pk: name for pk, name, _, _ in projects}
        active = GaugeMetricFamily("wattwise_active_runs", "Runs in the running state.", labels=["project"])
        project_energy = CounterMetricFamily(
            "wattwise_project_energy_joules", "Energy of all the project's runs (GPUs, and CPU and DRAM where "
            "measured), in joules.",
            labels=["project"], unit="joules",
        )
        for _, name, active_runs, energy_j in projects:
            active.add_metric([name], active_runs)
            project_energy.add_metric([name], energy_j or 0.0)
        yield active
        yield project_energy
        yield from self._gpus(names, now_s)
        yield from self._ingest(names)

    def _gpus(self, names: dict[int, str], now_s: float) -> Iterator[Metric]:
        # Ordered by first_ms alone so the (run_gpu, first_ms) index answers it with one backward step.
        latest = SampleWindow.objects.filter(run_gpu_id=OuterRef("pk")).order_by("-first_ms")
        rows = (
            RunGpu.objects.filter(run__status=Run.Status.RUNNING, run__project_id__in=list(names),
                                  gpu__component=Gpu.Component.GPU)
            .annotate(
                latest_readings=Subquery(latest.values("readings")[:1]),
            )
            .order_by("run__project_id", "run__name", "gpu__node__name", "gpu__index")
            .values_list(
                "run__project_id", "run__name", "gpu__node__name", "gpu__index", "gpu__uuid", "energy_j",
                "last_ms", "latest_readings",
            )
        )
        power = GaugeMetricFamily(
            "wattwise_gpu_power_watts",
            "Mean power of the GPU over its latest stored window (about 5 s), in watts; running runs only.",
            labels=GPU_LABELS, unit="watts",
        )
        gpu_energy = CounterMetricFamily(
            "wattwise_gpu_energy_joules", "Energy of the GPU in the run so far, in joules; running runs only.",
            labels=GPU_LABELS, unit="joules",
        )
        age = GaugeMetricFamily(
            "wattwise_gpu_last_sample_age_seconds",
            "Seconds since the GPU's latest stored sample (a stalled agent or broker shows here); running runs only.",
            labels=GPU_LABELS, unit="seconds",
        )
        run_energy: dict[tuple[str, str], float] = defaultdict(float)
        for project_id, run, node, index, uuid, energy_j, last_ms, readings in rows:
            labels = [names[project_id], run, node, str(index), uuid]
            gpu_energy.add_metric(labels, energy_j)
            run_energy[(names[project_id], run)] += energy_j
            if readings is not None:
                power_mw = columns.decode(readings, ("power_mw",))["power_mw"]
                power.add_metric(labels, float(power_mw.mean()) / MILLIWATTS_PER_W)
            if last_ms is not None:
                age.add_metric(labels, max(now_s - last_ms / MS_PER_S, 0.0))
        per_run = CounterMetricFamily(
            "wattwise_run_energy_joules", "Energy of all the run's GPUs so far, in joules; running runs only.",
            labels=["project", "run"], unit="joules",
        )
        for (project, run), energy_j in run_energy.items():
            per_run.add_metric([project, run], energy_j)
        yield from (power, gpu_energy, per_run, age)

    def _ingest(self, names: dict[int, str]) -> Iterator[Metric]:
        nodes = (
            Node.objects.filter(project_id__in=list(names))
            .annotate(batches=Count("receipts"), samples=Sum("receipts__samples"))
            .order_by("project_id", "name")
            .values_list("pk", "project_id", "name", "last_seen_at", "batches", "samples")
        )
        batches = CounterMetricFamily(
            "wattwise_ingest_batches", "Batches stored from the node (duplicates and rejections excluded).",
            labels=NODE_LABELS,
        )
        samples = CounterMetricFamily(
            "wattwise_ingest_samples", "GPU samples stored from the node.", labels=NODE_LABELS,
        )
        seen = GaugeMetricFamily(
            "wattwise_node_last_seen_timestamp_seconds",
            "When the node's latest batch was stored, in seconds since the epoch (updated at most every 30 s).",
            labels=NODE_LABELS, unit="seconds",
        )
        node_labels: dict[int, list[str]] = {}
        for pk, project_id, name, last_seen_at, batch_count, sample_count in nodes:
            labels = node_labels[pk] = [names[project_id], name]
            batches.add_metric(labels, batch_count)
            samples.add_metric(labels, sample_count or 0)
            if last_seen_at is not None:
                seen.add_metric(labels, last_seen_at.timestamp())
        yield from (batches, samples, seen)

        visible = Q(node_id__in=list(node_labels))
        if self.user.is_staff:
            visible |= Q(node__isnull=True)
        rejections = CounterMetricFamily(
            "wattwise_ingest_rejections",
            "Messages refused by ingest, by message kind and reason code (" + ", ".join(Rejection.Code.values) + ").",
            labels=[*NODE_LABELS, "kind", "reason"],
        )
        counts = (
            Rejection.objects.filter(visible).order_by()
            .values_list("node_id", "kind", "reason_code").annotate(n=Count("pk"))
        )
        for node_id, kind, reason_code, n in counts:
            rejections.add_metric([*node_labels.get(node_id, ["", ""]), kind, reason_code], n)
        yield rejections
