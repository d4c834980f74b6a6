"""Hugging Face Transformers: a ``TrainerCallback`` that measures the training run's GPU energy.

    from transformers import Trainer, TrainingArguments
    from wattwise_agent.integrations.huggingface import WattwiseCallback

    args = TrainingArguments(output_dir="out/bert-lr3e-5", logging_steps=10, report_to=["wandb"])
    trainer = Trainer(model=model, args=args, train_dataset=train, callbacks=[WattwiseCallback()])
    trainer.train()

When training begins the callback opens a ``Tracker`` named ``args.run_name``, else the last part of
``args.output_dir`` (or ``WattwiseCallback("name")``); every optimizer step is a step marker; every log
gets ``energy_j`` (every device measured since training began), ``energy_per_step_j`` (and ``emissions_g``
with a zone or region: ``TrainingRun.figures``), in ``trainer.state.log_history``
and for the reporters (W&B, MLflow, TensorBoard, ...); the Tracker closes when training ends. Keywords
other than the name go to ``Tracker`` (``backend``, ``url``, ``token``, ``tags``, ``zone``, ...). The Trainer
has no event for a training error: such a run is closed when the callback trains again or the program exits.

transformers is imported when ``WattwiseCallback`` is first looked up, not when this module is imported.
"""

from __future__ import annotations

import logging
import os
import sys
from types import FrameType
from typing import Any

from wattwise_agent.integrations.training_run import TrainingRun, callback_class
from wattwise_agent.torch_hooks import Tracker

log = logging.getLogger(__name__)

# How far up the stack the Trainer's CallbackHandler is looked for (it calls call_event, which calls us).
_HANDLER_FRAMES = 4


class TrainerEnergy:
    """The callback's behaviour; ``WattwiseCallback`` is this and transformers' ``TrainerCallback``."""

    def __init__(self, run: str | None = None, **tracker_options: Any) -> None:
        self.training = TrainingRun(run, tracker_options)

    @property
    def tracker(self) -> Tracker | None:
        """The latest training run's Tracker (``tracker.summary`` once training ended)."""
        return self.training.tracker

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        _move_ahead_of_reporters(self)
        self.training.begin(run_name(args))

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        # The Trainer counts the step before calling on_step_end: the step just done is global_step - 1.
        self.training.step(state.global_step - 1)
        # Tokens are counted by the Trainer (over every process) when include_num_input_tokens_seen is on.
        self.training.work(steps=state.global_step, tokens=int(getattr(state, "num_input_tokens_seen", 0) or 0))

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None,
               **kwargs: Any) -> None:
        figures = self.training.figures()
        if not figures or logs is None:
            return
        # Trainer.log appends a copy of the logs (with "step") to the history just before on_log.
        history = state.log_history
        same_entry = bool(history) and {k: v for k, v in history[-1].items() if k != "step"} == logs
        logs.update(figures)
        if same_entry:
            history[-1].update(figures)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.training.end()


def run_name(args: Any) -> str:
    """The run's name from TrainingArguments: ``run_name``, else the output directory's last part."""
    if getattr(args, "run_name", None):
        return str(args.run_name)
    output_dir = getattr(args, "output_dir", None)
    name = os.path.basename(os.path.normpath(str(output_dir))) if output_dir else ""
    return name or "huggingface-trainer"


def _move_ahead_of_reporters(callback: object) -> None:
    """Put the callback first in the Trainer's list, so every other callback's on_log sees the energy.

    The Trainer lists its reporters (``report_to``) before the user's callbacks and offers no way to insert
    one ahead of them; its CallbackHandler is the caller of call_event, a frame or two up. Moving ourselves
    from position i to 0 while call_event iterates keeps the next position pointing at the next callback.
    """
    frame: FrameType | None = sys._getframe(1)
    for _ in range(_HANDLER_FRAMES):
        if frame is None:
            break
        handler = frame.f_locals.get("self")
        callbacks = getattr(handler, "callbacks", None)
        if isinstance(callbacks, list) and any(c is callback for c in callbacks):
            if callbacks[0] is not callback:
                callbacks.remove(callback)
                callbacks.insert(0, callback)
            return
        frame = frame.f_back
    log.warning("WattwiseCallback could not find the Trainer's callback list: energy_j is in the log history, "
                "but reporters listed before this callback will not see it")


def _callback_class() -> type:
    from transformers import TrainerCallback

    return callback_class(TrainerEnergy, TrainerCallback, "Trainer", __name__)


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module does not import transformers (and torch).
    if name == "WattwiseCallback":
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
