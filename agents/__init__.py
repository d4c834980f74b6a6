"""Wattwise node agent: reads GPU energy and streams it to the app. Imports no Django and no Celery.

Command line: ``python -m agents stream|probe`` (``agents.cli``). Library: ``agents.streamer.Streamer``
(backend → sampler → batcher → signed envelopes → transport, with a spool), ``agents.replay``
(simulated replays for demos), ``agents.torch_hooks.Tracker`` (inside a training process), and
``agents.wire``, the message format shared with the app. ``docs/agent.md`` explains them.
"""

__version__ = "0.1.0"
