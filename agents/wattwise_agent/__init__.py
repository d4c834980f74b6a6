"""Wattwise node agent: reads GPU energy and streams it to the app. Imports no Django and no Celery.

Command line: ``python -m wattwise_agent stream|probe`` (``wattwise_agent.cli``). Library: ``wattwise_agent.streamer.Streamer``
(backend → sampler → batcher → signed envelopes → transport, with a spool), ``wattwise_agent.replay``
(simulated replays for demos), ``wattwise_agent.torch_hooks.Tracker`` (inside a training process), and
``wattwise_agent.wire``, the message format shared with the app. ``docs/agent.md`` explains them.
"""

__version__ = "0.1.0"
