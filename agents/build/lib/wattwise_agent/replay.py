"""Replay a simulated run of a past period, as fast as possible, through any transport.

For demos and tests, and for the app, which seeds its demo data through the same ingest path with an
in-process transport::

    from wattwise_agent.replay import replay_simulated_run
    from wattwise_agent.transport import CallableTransport
    summary = replay_simulated_run(CallableTransport(ingest), run="demo-llm", token=node_token,
                                   node="demo-node-1", gpus=4, start=datetime(2026, 1, 1, tzinfo=timezone.utc),
                                   duration_s=3600)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from wattwise_agent.backends.simulated import SimulatedBackend
from wattwise_agent.clock import VirtualClock
from wattwise_agent.spool import Spool
from wattwise_agent.streamer import Streamer, StreamSummary
from wattwise_agent.transport import Transport


def epoch_ms(moment: datetime) -> int:
    """Milliseconds since the Unix epoch; a naive datetime is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return round(moment.timestamp() * 1000)


def replay_simulated_run(
    transport: Transport,
    *,
    run: str,
    token: str,
    node: str,
    start: datetime,
    duration_s: float,
    gpus: int = 1,
    seed: int = 0,
    rate_hz: float = 10.0,
    window_s: float = 5.0,
    tags: Sequence[str] = (),
    reset_at_s: float | None = None,
    reset_probability: float = 0.0,
    without_counter: Sequence[int] = (),
    spool: Spool | None = None,
    drain_timeout_s: float = 10.0,
    stop: threading.Event | None = None,
    progress: Callable[[int], None] | None = None,
    zone: str | None = None,
    region: str | None = None,
) -> StreamSummary:
    """Simulate ``duration_s`` of training from ``start`` on a virtual clock and stream it; no sleeping."""
    backend = SimulatedBackend(
        gpus,
        node=node,
        seed=seed,
        reset_at_s=reset_at_s,
        reset_probability=reset_probability,
        without_counter=without_counter,
    )
    streamer = Streamer(
        backend,
        transport,
        run=run,
        token=token,
        node=node,
        clock=VirtualClock(epoch_ms(start)),
        rate_hz=rate_hz,
        window_s=window_s,
        spool=spool,
        tags=tags,
        drain_timeout_s=drain_timeout_s,
        zone=zone,
        region=region,
    )
    try:
        streamer.open()
        streamer.run(duration_s, stop=stop, progress=progress)
        return streamer.close()
    finally:
        backend.close()
