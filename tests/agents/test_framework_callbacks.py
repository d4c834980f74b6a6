"""The Trainer and Lightning callbacks when training fails: the run is closed, and the next one is a run of its own.

Real libraries on the CPU, tiny models built here, simulated GPUs, messages kept in memory. (The runs they
make in the app: tests/dashboard/runs/test_framework_runs.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.agents.support import TOKEN, opened
from wattwise_agent.transport import MemoryTransport

pytestmark = pytest.mark.torch


def tracker_options(transport: MemoryTransport) -> dict[str, Any]:
    return {"backend": "simulated", "transport": transport, "token": TOKEN, "node": "n", "rate_hz": 50}


def kinds_by_stream(transport: MemoryTransport) -> dict[str, list[str]]:
    streams: dict[str, list[str]] = {}
    for envelope in transport.envelopes:
        streams.setdefault(opened(envelope)["stream"], []).append(envelope["kind"])
    return streams


def test_a_trainer_run_that_raised_is_closed_when_the_trainer_trains_again(tmp_path: Any) -> None:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from wattwise_agent.integrations.huggingface import WattwiseCallback

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, x: Any, labels: Any = None) -> dict[str, Any]:
            return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}

    class FailOnce(TrainerCallback):
        failed = False

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step == 2 and not self.failed:
                self.failed = True
                raise RuntimeError("CUDA out of memory")

    examples = [{"x": torch.ones(2), "labels": torch.ones(1)}] * 16
    transport = MemoryTransport()
    energy = WattwiseCallback("flaky", **tracker_options(transport))
    args = TrainingArguments(output_dir=str(tmp_path), max_steps=4, per_device_train_batch_size=4, report_to="none",
                             save_strategy="no", use_cpu=True, disable_tqdm=True)
    trainer = Trainer(model=Regression(), args=args, train_dataset=examples, callbacks=[energy, FailOnce()])
    with pytest.raises(RuntimeError, match="out of memory"):
        trainer.train()
    failed = energy.tracker
    assert failed.summary is None  # the Trainer has no event for an error: the run is still open
    trainer.train()
    assert failed.summary is not None and energy.tracker is not failed
    assert energy.tracker.summary is not None and energy.tracker.summary.steps == 4
    streams = kinds_by_stream(transport)
    assert len(streams) == 2 and all(kinds[0] == "open_run" and kinds[-1] == "close_run" for kinds in streams.values())


def test_a_lightning_run_that_raised_is_closed_and_the_error_goes_on() -> None:
    import lightning.pytorch as pl
    import torch

    from wattwise_agent.integrations.lightning import WattwiseCallback

    class Broken(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            if batch_idx == 2:
                raise RuntimeError("NaN loss")
            x, y = batch
            return torch.nn.functional.mse_loss(self.linear(x), y)

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(16, 2), torch.ones(16, 1)),
                                         batch_size=4)
    transport = MemoryTransport()
    energy = WattwiseCallback(**tracker_options(transport))
    trainer = pl.Trainer(max_steps=4, accelerator="cpu", devices=1, logger=False, callbacks=[energy],
                         enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(RuntimeError, match="NaN loss"):
        trainer.fit(Broken(), loader)
    assert energy.tracker is not None and energy.tracker.run == "Broken"  # no logger: the module's name
    assert energy.tracker.summary is not None and energy.tracker.summary.steps == 2
    assert [kinds[-1] for kinds in kinds_by_stream(transport).values()] == ["close_run"]
