"""Training-framework integrations: a Hugging Face Trainer callback (``huggingface``), a Lightning callback
(``lightning``); the ``@wattwise_agent.track`` decorator is in ``wattwise_agent.tracked_function``.

Each opens a ``wattwise_agent.torch_hooks.Tracker`` when training starts, marks every optimizer step and
closes it when training ends. The frameworks are imported only when a callback class is first used, so
importing the agent never needs them (``pip install "wattwise-agent[transformers]"`` or ``[lightning]``).
"""
