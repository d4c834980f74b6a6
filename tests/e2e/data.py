"""Runs for the browser tests, streamed server-side through the real ingest path (no broker)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connections

from dashboard.telemetry import ingest
from tests.factories import T0_MS, RegisteredNode, envelope, simple_batch
from wattwise_agent.replay import replay_simulated_run
from wattwise_agent.transport import CallableTransport

HANDLERS = {"open_run": ingest.open_run, "batch": ingest.ingest_batch, "close_run": ingest.close_run}


def replay(node: RegisteredNode, run: str, *, start: datetime, duration_s: float, gpus: int = 2,
           rate_hz: float = 0.5, window_s: float = 60.0, **options: Any) -> None:
    """A finished run of simulated GPUs, as `python -m wattwise_agent stream --backend simulated` sends it."""
    replay_simulated_run(
        CallableTransport(lambda envelope: HANDLERS[envelope["kind"]](envelope)), run=run, token=node.token,
        node=node.name, start=start, duration_s=duration_s, gpus=gpus, rate_hz=rate_hz, window_s=window_s, **options,
    )


def stream_batches(node: RegisteredNode, run: str, seqs: range, *, gpus: int = 2, samples: int = 50) -> None:
    """Batches ``seqs`` of a run that stays open (no close_run): ``samples`` readings 100 ms apart per GPU."""
    for seq in seqs:
        for gpu in range(gpus):
            ingest.ingest_batch(simple_batch(node, seq=seq, run=run, uuid=f"GPU-{gpu}", stream=f"{run}/s{gpu}", index=gpu,
                                             samples=samples, step_mj=30_000 + gpu * 5_000))


def close_streams(node: RegisteredNode, run: str, seqs: range, *, gpus: int = 2, samples: int = 50) -> None:
    """The agents of a ``stream_batches`` run say they are done: the run finishes."""
    for gpu in range(gpus):
        ended_ms = T0_MS + seqs.stop * samples * 100 - 100
        payload = {"run": run, "stream": f"{run}/s{gpu}", "ended_ms": ended_ms, "last_seq": seqs.stop - 1,
                   "samples_sent": len(seqs) * samples}
        ingest.close_run(envelope(node, payload, kind="close_run"))


def release_connections() -> None:
    """ORM calls made while Playwright's event loop runs open connections of their own: close them, or the
    test database cannot be flushed or dropped afterwards."""
    connections.close_all()
