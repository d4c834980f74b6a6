"""PyTorch Lightning: a ``Callback`` that measures the training run's GPU energy.

    import lightning.pytorch as pl
    from wattwise_agent.integrations.lightning import WattwiseCallback

    trainer = pl.Trainer(max_epochs=3, callbacks=[WattwiseCallback()])
    trainer.fit(model, train_loader)

When training starts the callback opens a ``Tracker`` named after the trainer's logger (``NAME-version_N``,
so each fit is a run of its own), or the LightningModule's class without a logger (or
``WattwiseCallback("name")``); every optimizer step is a step marker; ``energy_j`` (every device measured
since training started), ``energy_per_step_j`` (and ``emissions_g``: ``TrainingRun.figures``) are logged
with ``pl_module.log`` at every step, so the trainer's loggers (CSV, TensorBoard, W&B, MLflow, ...) write
them every ``log_every_n_steps`` and ``trainer.callback_metrics`` holds the latest; the Tracker closes when
training ends, or fails. Keywords other than the name go to ``Tracker`` (``backend``, ``url``, ``token``,
``tags``, ``zone``, ...).

``lightning`` (``import lightning.pytorch``) is imported when ``WattwiseCallback`` is first looked up, not
when this module is imported.
"""

from __future__ import annotations

from typing import Any

from wattwise_agent.integrations.training_run import TrainingRun, callback_class
from wattwise_agent.torch_hooks import Tracker


class LightningEnergy:
    """The callback's behaviour; ``WattwiseCallback`` is this and Lightning's ``Callback``."""

    def __init__(self, run: str | None = None, **tracker_options: Any) -> None:
        self.training = TrainingRun(run, tracker_options)

    @property
    def tracker(self) -> Tracker | None:
        """The latest training run's Tracker (``tracker.summary`` once training ended)."""
        return self.training.tracker

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self.training.begin(run_name(trainer, pl_module))

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        # The figures go to the step's logs first: energy and steps to the sampler's last reading, as the app
        # counts them. global_step counts optimizer steps and already counts this one; with gradient
        # accumulation it stays the same over the batches of one step, which TrainingRun.step marks once.
        to_loggers = bool(trainer.loggers)  # without one, Lightning warns at every log(logger=True)
        for key, value in self.training.figures().items():
            pl_module.log(key, value, on_step=True, on_epoch=False, prog_bar=False, logger=to_loggers)
        if trainer.global_step > 0:
            self.training.step(trainer.global_step - 1)
            self.training.work(steps=trainer.global_step)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self.training.end()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self.training.end(exception)


def run_name(trainer: Any, pl_module: Any) -> str:
    """``NAME-version_N`` of the trainer's first logger, else the LightningModule's class name."""
    logger = getattr(trainer, "logger", None)
    if logger is not None and getattr(logger, "name", None):
        version = getattr(logger, "version", None)
        if version is None or version == "":
            return str(logger.name)
        # Not "name/version": the app reads a "/" in a run's name as PROJECT/NAME (compare links).
        return f"{logger.name}-{version if isinstance(version, str) else f'version_{version}'}"
    return type(pl_module).__name__


def _callback_class() -> type:
    from lightning.pytorch.callbacks import Callback

    return callback_class(LightningEnergy, Callback, "Lightning", __name__)


def __getattr__(name: str) -> Any:
    # Built on first use, so that importing this module does not import lightning (and torch).
    if name == "WattwiseCallback":
        cls = _callback_class()
        globals()[name] = cls
        return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
