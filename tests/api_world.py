"""The REST API tests' world: two users in two projects, each with a run streamed through ingest, and
bearer tokens to call the API as them. A plugin of the root conftest, so every app's API tests share it;
it imports the app only inside its functions, so suites run without Django (``-p no:django``) load it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pytest

from tests.factories import member, register, simple_batch

if TYPE_CHECKING:
    from dashboard.telemetry.models import Run, RunGpu

BATCHES = 6
SAMPLES_PER_BATCH = 50  # 100 ms apart: windows of 5 s, as the agent sends them


@pytest.fixture
def _fast_passwords(settings):
    """Users are created in every test here; the default password hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class Api:
    """Calls the API with a bearer token through Django's test client."""

    def __init__(self, client: Any, token: str | None) -> None:
        self.client = client
        self.token = token

    def get(self, path: str, **params: Any) -> Any:
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.client.get("/api" + path, params, headers=headers)


@dataclass
class World:
    ana: Any
    bob: Any
    ours: Run
    theirs: Run
    gpu: RunGpu
    api: Api  # as ana
    bob_api: Api


def stream_run(node_name: str, project: str, run: str, *, batches: int = BATCHES, gpus: int = 1) -> Run:
    from dashboard.telemetry import ingest
    from dashboard.telemetry.models import Run

    node = register(node_name, project)
    for seq in range(batches):
        for g in range(gpus):
            message = simple_batch(node, seq=seq, run=run, samples=SAMPLES_PER_BATCH, uuid=f"GPU-{node_name}-{g}",
                                   stream=f"s{g}", index=g)
            assert ingest.ingest_batch(message).status == "stored"
    return Run.objects.get(name=run, project__name=project)


@pytest.fixture
def api_world(db, client, _fast_passwords) -> World:
    from dashboard.projects.tokens import issue_token
    from dashboard.telemetry.models import RunGpu

    ana, bob = member("ana", "vision"), member("bob", "speech")
    ours = stream_run("node-a", "vision", "llama-7b")
    theirs = stream_run("node-b", "speech", "whisper")
    return World(
        ana=ana, bob=bob, ours=ours, theirs=theirs, gpu=RunGpu.objects.get(run=ours),
        api=Api(client, issue_token(ana)), bob_api=Api(client, issue_token(bob)),
    )
