"""Builders for the objects tests need: users in projects, registered nodes, signed agent messages."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from wattwise_agent.wire import ENERGY_COUNTER, POWER_INSTANT, SAMPLE_COLUMNS, gpu_payload, seal, signing_key

T0_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@dataclass
class RegisteredNode:
    name: str
    token: str
    project: str

    @property
    def key(self) -> bytes:
        return signing_key(self.token)


def register(name: str = "node-a", project: str = "vision") -> RegisteredNode:
    from dashboard.telemetry.nodes import register_node

    _, token, _ = register_node(name, project)
    return RegisteredNode(name, token, project)


def member(username: str, *projects: str) -> Any:
    from django.contrib.auth import get_user_model

    from dashboard.projects.models import Project

    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    for name in projects:
        project, _ = Project.objects.get_or_create(name=name)
        project.members.add(user)
    return user


def gpu_entry(
    uuid: str,
    t_ms: Sequence[int],
    energy_mj: Sequence[int],
    *,
    index: int = 0,
    power_mw: Sequence[int] | None = None,
    prev: tuple[int, int] | None = None,
    energy_source: str = ENERGY_COUNTER,
) -> dict[str, Any]:
    n = len(t_ms)
    columns: dict[str, Sequence[int]] = {key: [0] * n for key in SAMPLE_COLUMNS}
    columns.update(t_ms=t_ms, energy_mj=energy_mj, power_mw=power_mw or [300_000] * n)
    columns.update(sm_clock_mhz=[1980] * n, util_pct=[90] * n, temp_c=[60] * n)
    return gpu_payload(
        uuid=uuid, index=index, name="Test GPU", energy_source=energy_source, power_field=POWER_INSTANT,
        prev=prev, columns=columns,
    )


def batch_payload(
    gpus: list[dict[str, Any]], *, run: str = "run-1", stream: str = "s1", seq: int = 0, **extra: Any
) -> dict[str, Any]:
    times = [t for g in gpus for t in g["t_ms"]]
    payload = {
        "run": run,
        "stream": stream,
        "seq": seq,
        "simulated": False,
        "window_start_ms": min(times),
        "window_end_ms": max(times),
        "gpus": gpus,
        "events": [],
    }
    payload.update(extra)
    return payload


def envelope(node: RegisteredNode, payload: dict[str, Any], kind: str = "batch") -> dict[str, Any]:
    """Signed as the node would sign it, but not checked: tests also send what the app must refuse."""
    return seal(kind, node.name, payload, node.token, check=False)


def simple_batch(
    node: RegisteredNode, *, seq: int = 0, run: str = "run-1", uuid: str = "GPU-1", start_mj: int = 1_000_000,
    samples: int = 10, step_mj: int = 30_000, stream: str = "s1", index: int = 0,
) -> dict[str, Any]:
    """A batch of one GPU: `samples` readings 100 ms apart, the counter rising `step_mj` per reading."""
    t0 = T0_MS + seq * samples * 100
    t_ms = [t0 + 100 * i for i in range(samples)]
    energy = [start_mj + seq * samples * step_mj + step_mj * i for i in range(samples)]
    prev = (t0 - 100, energy[0] - step_mj) if seq else None
    return envelope(node, batch_payload([gpu_entry(uuid, t_ms, energy, prev=prev, index=index)], run=run, seq=seq, stream=stream))
