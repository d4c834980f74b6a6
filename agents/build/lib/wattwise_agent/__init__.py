"""Wattwise node agent: reads GPU energy and streams it to the app. Imports no Django and no Celery.

Command line: ``python -m wattwise_agent stream|probe`` (``wattwise_agent.cli``). Library: ``wattwise_agent.streamer.Streamer``
(backend → sampler → batcher → signed envelopes → transport, with a spool), ``wattwise_agent.replay``
(simulated replays for demos), ``wattwise_agent.torch_hooks.Tracker`` (inside a training process), and
``wattwise_agent.wire``, the message format shared with the app. ``docs/agent.md`` explains them.
``wattwise_agent.track`` decorates a function so that each call is a tracked run
(``wattwise_agent.tracked_function``); ``wattwise_agent.integrations`` has Trainer and Lightning callbacks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wattwise_agent.tracked_function import track as track

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # Looked up on first use: `import wattwise_agent` (which every agent module does) stays light.
    if name == "track":
        from wattwise_agent.tracked_function import track

        return track
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
