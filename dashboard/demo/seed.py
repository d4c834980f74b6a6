"""The demo: a project whose runs simulated agents stream through the real ingest path, in-process.

Every envelope goes through the same Celery task the workers run (``task.apply``), signed with the
demo node's token, so the demo exercises signature checks, validation, storage and rollups exactly as
production traffic does. Everything it shows is labelled simulated.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import transaction
from django.utils import timezone

from dashboard.projects import membership
from dashboard.projects.models import Project
from dashboard.telemetry import tasks
from dashboard.telemetry.models import Node, Run, RunGpu
from dashboard.telemetry.nodes import register_node
from planner.carbon.models import NodeSite, Site
from planner.units import MS_PER_S
from wattwise_agent import wire
from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.replay import replay_simulated_run
from wattwise_agent.streamer import Streamer, StreamSummary
from wattwise_agent.transport import CallableTransport

DEMO_PROJECT = "demo"
DEMO_USER = "demo"
DEMO_PASSWORD = "wattwise-demo"

_TASKS = {wire.KIND_BATCH: tasks.ingest_batch, wire.KIND_OPEN_RUN: tasks.open_run, wire.KIND_CLOSE_RUN: tasks.close_run}
# Where the demo nodes run, for the run pages' carbon section: node 1 is on a site (zone DE, PUE 1.3;
# a site beats its agent's --zone), node 2 only says --region aws:eu-north-1 (Stockholm, zone SE-SE3).
DEMO_PLACES: dict[str, dict[str, str]] = {"demo-node-1": {"zone": "DE"}, "demo-node-2": {"region": "aws:eu-north-1"}}
DEMO_SITE_NAME, DEMO_SITE_WHERE, DEMO_SITE_PUE = "demo-frankfurt", "DE", 1.3


@dataclass(frozen=True)
class DemoRun:
    """One simulated run: ``nodes`` nodes of ``gpus`` GPUs, ending ``ends_ago`` before now."""

    name: str
    nodes: int
    gpus: int
    duration: timedelta
    ends_ago: timedelta
    tags: tuple[str, ...]
    seed: int
    rate_hz: float = 1.0
    window_s: float = 60.0
    reset_at_s: float | None = None
    without_counter: tuple[int, ...] = ()


# Seeded at 1 Hz with minute windows to keep `make run` quick; live agents default to 10 Hz, 5 s windows.
DEMO_RUNS = (
    DemoRun("llama-13b-pretrain", nodes=2, gpus=4, duration=timedelta(hours=3), ends_ago=timedelta(minutes=10),
            tags=("llm", "pretraining"), seed=1),
    DemoRun("bert-large-finetune", nodes=1, gpus=2, duration=timedelta(minutes=50), ends_ago=timedelta(hours=20),
            tags=("nlp", "finetune"), seed=2, reset_at_s=1500.0),
    DemoRun("resnet50-sweep-3", nodes=1, gpus=2, duration=timedelta(minutes=25), ends_ago=timedelta(days=1, hours=4),
            tags=("vision", "sweep"), seed=3, without_counter=(1,)),
)


def _deliver(envelope: dict[str, Any]) -> None:
    _TASKS[envelope["kind"]].apply(args=(envelope,), throw=True)


def demo_user() -> User:
    """The demo login, admin of the demo project, allowed into the Django admin.

    Its password is set only when the user is created: setting it again (even to the same text) changes
    the hash every session is tied to, and so would sign every browser out at each `make run`.
    """
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(
        username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
    )
    if created:
        user.set_password(DEMO_PASSWORD)
        user.save()
    project, _ = Project.objects.get_or_create(name=DEMO_PROJECT)
    membership.add_member(project, user, membership.Role.ADMIN)
    return user


def is_seeded() -> bool:
    return Run.objects.filter(project__name=DEMO_PROJECT, name=DEMO_RUNS[0].name).exists()


def reset() -> None:
    Run.objects.filter(project__name=DEMO_PROJECT).delete()


def seed(now: datetime | None = None, progress: Callable[[float], object] | None = None) -> dict[str, int]:
    """Stream every demo run; return the samples each run stored. ``progress`` gets simulated seconds."""
    now = now or timezone.now()
    stored: dict[str, int] = {}
    for demo in DEMO_RUNS:
        start = now - demo.ends_ago - demo.duration
        for n in range(demo.nodes):
            clock_ms = [int(start.timestamp() * MS_PER_S)]

            def advance(now_ms: int, clock_ms: list[int] = clock_ms) -> None:
                if progress is not None:
                    progress((now_ms - clock_ms[0]) / MS_PER_S)
                clock_ms[0] = now_ms

            node_name = f"demo-node-{n + 1}"
            with transaction.atomic():
                registered, token, _ = register_node(node_name, DEMO_PROJECT, rotate=True)
                if n == 0:
                    _demo_site(registered)
            replay_simulated_run(
                CallableTransport(_deliver),
                run=demo.name,
                token=token,
                node=node_name,
                start=start,
                duration_s=demo.duration.total_seconds(),
                gpus=demo.gpus,
                seed=demo.seed * 100 + n,
                rate_hz=demo.rate_hz,
                window_s=demo.window_s,
                tags=demo.tags,
                reset_at_s=demo.reset_at_s,
                without_counter=demo.without_counter,
                progress=advance,
                zone=DEMO_PLACES.get(node_name, {}).get("zone"),
                region=DEMO_PLACES.get(node_name, {}).get("region"),
            )
        stored[demo.name] = sum(RunGpu.objects.filter(run__name=demo.name).values_list("samples", flat=True))
    # The planner's demo: the shipped GPT-3 profile with a solved 8 × 12 frontier (well under a second).
    from planner.plans.demo import seed_planner_demo

    seed_planner_demo(Project.objects.get(name=DEMO_PROJECT))
    return stored


def _demo_site(node: Node) -> None:
    site, _ = Site.objects.update_or_create(
        project=node.project, name=DEMO_SITE_NAME, defaults={"where": DEMO_SITE_WHERE, "pue": DEMO_SITE_PUE}
    )
    NodeSite.objects.update_or_create(node=node, defaults={"site": site})


def total_seconds() -> float:
    """Simulated seconds the demo streams, over all its nodes (for a progress bar)."""
    return sum(d.duration.total_seconds() * d.nodes for d in DEMO_RUNS)


LIVE_NODE = "demo-node-live"


def stream_live(
    run: str, *, gpus: int = 4, duration_s: float | None = None, stop: threading.Event | None = None,
    rate_hz: float = 10.0, window_s: float = 5.0,
) -> StreamSummary:
    """Stream a simulated run in real time into the demo project, through the same ingest tasks.

    This is what a live agent does, minus the broker: it lets the embedded `make run` (no Redis, no
    worker) show a run whose page updates while you watch. Each call is a new stream of ``run``.
    """
    demo_user()
    with transaction.atomic():
        _, token, _ = register_node(LIVE_NODE, DEMO_PROJECT, rotate=True)
    backend = SimulatedBackend(gpus, node=LIVE_NODE, seed=7)
    streamer = Streamer(backend, CallableTransport(_deliver), run=run, token=token, node=LIVE_NODE,
                        rate_hz=rate_hz, window_s=window_s, tags=("live", "simulated"), zone="SE-SE3",
                        # Delivered from the sampling thread: storing a 5 s window takes milliseconds, and a
                        # sender thread would hold a database connection of its own that nobody closes.
                        threaded=False)
    try:
        streamer.open()
        streamer.run(duration_s, stop=stop)
        return streamer.close()
    finally:
        backend.close()
