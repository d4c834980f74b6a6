"""A Hugging Face Trainer run and a Lightning run, each with the agent's callback, are runs with per-step energy
in the app and have the energy in the trainer's own logs.

Real libraries on the CPU, a tiny model built here (nothing downloaded), simulated GPUs. The callback's Tracker
delivers every message as it is made, from its sender thread, to the app's real ingest functions in-process
(``open_run``, ``ingest_batch``, ``close_run``, as tests/e2e/data.py does), hence transactional tests: the
sender thread has a database connection of its own. A test callback waits after each step until the sampler
has read past the step's marker, so what the logs say is the same on a fast or a loaded machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.urls import reverse

from dashboard.telemetry import ingest
from dashboard.telemetry.admission import Outcome, Status
from dashboard.telemetry.models import Run, RunEvent
from tests.e2e.data import replay
from tests.factories import member, register
from wattwise_agent.transport import CallableTransport

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.torch]

HANDLERS: dict[str, Callable[[Any], Outcome]] = {
    "open_run": ingest.open_run, "batch": ingest.ingest_batch, "close_run": ingest.close_run,
}
WAIT_S = 30.0  # how long a step may wait for the sampler's next reading before the test fails


class App:
    """The app, in-process: the node's Tracker options, and what became of every message it delivered."""

    def __init__(self) -> None:
        self.node = register("trainer-host", "vision")
        self.outcomes: list[Outcome] = []

    def deliver(self, envelope: dict[str, Any]) -> None:
        try:
            self.outcomes.append(HANDLERS[envelope["kind"]](envelope))
        finally:
            connection.close()  # the sender thread's own connection, or the test database cannot be flushed

    def tracker_options(self) -> dict[str, Any]:
        return {"backend": "simulated", "gpus": 2, "transport": CallableTransport(self.deliver),
                "token": self.node.token, "node": self.node.name, "rate_hz": 50, "window_s": 0.2}

    def per_step_energy(self, client: Any, run: str) -> Any:
        """The run's totals as the compare page shows them (energy, steps, energy per step).

        The page compares two runs or more: the run is shown beside a short replayed one without steps.
        """
        replay(self.node, "reference", start=datetime(2026, 1, 1, tzinfo=UTC), duration_s=10, gpus=1,
               rate_hz=1, window_s=5)
        response = client.get(reverse("compare") + f"?runs={run},reference")
        assert response.status_code == 200
        totals = response.context["totals"][0]
        assert totals.run.name == run
        return totals


@pytest.fixture
def app(postgres: None, client: Any) -> App:
    client.force_login(member("ana", "vision"))
    return App()


def wait_until_counted(tracker: Any, steps: int) -> None:
    """Wait until the sampler has read past the marker of step ``steps - 1`` (energy_so_far counts it)."""
    deadline = time.monotonic() + WAIT_S
    while tracker.energy_so_far().steps < steps:
        assert time.monotonic() < deadline, f"the sampler did not count step {steps - 1} in {WAIT_S:g} s"
        time.sleep(0.005)


def assert_in_the_app(app: App, client: Any, run: str, steps: int, energy_j: float) -> Any:
    assert {o.status for o in app.outcomes} == {Status.OPENED, Status.STORED, Status.CLOSED}
    stored = Run.objects.get(name=run)
    assert stored.status == Run.Status.FINISHED
    markers = RunEvent.objects.filter(run=stored, kind="step_end").order_by("t_ms")
    assert [e.data["step"] for e in markers] == list(range(steps))
    assert stored.run_nodes.get().work == {"steps": steps}  # the callback reported its units of work
    totals = app.per_step_energy(client, run)
    assert totals.steps == steps
    assert totals.energy_j == pytest.approx(energy_j)  # the app counts what the agent measured
    assert totals.j_per_step == pytest.approx(energy_j / steps)
    return totals


def tiny_data(torch: Any) -> tuple[Any, Any]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(96, 4, generator=generator)
    return inputs, inputs.sum(dim=1, keepdim=True)


def test_a_trainer_run_is_a_run_with_per_step_energy_in_the_app_and_in_the_trainers_logs(
    app: App, client: Any, tmp_path: Path
) -> None:
    import torch
    from transformers import Trainer, TrainerCallback, TrainingArguments

    from wattwise_agent.integrations.huggingface import WattwiseCallback

    torch.manual_seed(0)
    inputs, targets = tiny_data(torch)

    class Regression(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def forward(self, x: Any, labels: Any = None) -> dict[str, Any]:
            out = self.linear(x)
            return {"loss": torch.nn.functional.mse_loss(out, labels), "logits": out}

    class Examples(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(inputs)

        def __getitem__(self, i: int) -> dict[str, Any]:
            return {"x": inputs[i], "labels": targets[i]}

    class Reporter(TrainerCallback):
        """Stands for W&B, MLflow, TensorBoard: listed before the user's callbacks, as ``report_to``'s are."""

        def __init__(self) -> None:
            self.logs: list[dict[str, Any]] = []

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            self.logs.append(dict(logs))

    class Settle(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            wait_until_counted(energy.tracker, state.global_step)

    args = TrainingArguments(
        output_dir=str(tmp_path / "tiny-regression"), max_steps=12, logging_steps=4, per_device_train_batch_size=8,
        learning_rate=0.05, report_to="none", save_strategy="no", use_cpu=True, disable_tqdm=True,
    )
    reporter, energy = Reporter(), WattwiseCallback(**app.tracker_options())
    trainer = Trainer(model=Regression(), args=args, train_dataset=Examples(),
                      callbacks=[reporter, energy, Settle()])
    trainer.train()

    training_logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert [entry["step"] for entry in training_logs] == [4, 8, 12]
    energies = [entry["energy_j"] for entry in training_logs]
    assert 0 < energies[0] < energies[1] < energies[2]
    for entry in training_logs:
        assert entry["energy_per_step_j"] == pytest.approx(entry["energy_j"] / entry["step"])
    assert [log["energy_j"] for log in reporter.logs if "loss" in log] == energies  # the reporters see it too
    summary = energy.tracker.summary
    assert summary is not None and summary.run == "tiny-regression"  # named from the output directory
    assert energies[-1] <= summary.total_energy_j
    assert_in_the_app(app, client, "tiny-regression", 12, summary.total_energy_j)


def test_a_lightning_run_is_a_run_with_per_step_energy_in_the_app_and_in_the_trainers_logs(
    app: App, client: Any, tmp_path: Path
) -> None:
    import csv

    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger

    from wattwise_agent.integrations.lightning import WattwiseCallback

    torch.manual_seed(0)
    inputs, targets = tiny_data(torch)

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> Any:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.linear(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.05)

    class Settle(pl.Callback):
        def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
            wait_until_counted(energy.tracker, trainer.global_step)

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(inputs, targets), batch_size=8)
    energy = WattwiseCallback(**app.tracker_options())
    trainer = pl.Trainer(
        max_steps=6, accumulate_grad_batches=2, log_every_n_steps=2, accelerator="cpu", devices=1,
        logger=CSVLogger(str(tmp_path), name="tiny"), callbacks=[Settle(), energy],
        enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
    )
    trainer.fit(Regression(), loader)

    # Two batches per optimizer step: one marker per step, numbered as Lightning counts them.
    with open(trainer.logger.experiment.metrics_file_path) as f:
        rows = [row for row in csv.DictReader(f) if row["energy_j"]]
    assert [int(row["step"]) for row in rows] == [1, 3, 5]  # every log_every_n_steps, counted from 0
    energies = [float(row["energy_j"]) for row in rows]
    assert 0 < energies[0] < energies[1] < energies[2]
    # The energy is logged at a step's end, when the sampler has counted the steps before it.
    assert [float(row["energy_per_step_j"]) for row in rows] == pytest.approx(
        [e / int(row["step"]) for e, row in zip(energies, rows, strict=True)])
    assert float(trainer.callback_metrics["energy_j"]) == pytest.approx(energies[-1])
    summary = energy.tracker.summary
    assert summary is not None and summary.run == "tiny-version_0"  # named from the logger
    assert energies[-1] <= summary.total_energy_j
    assert_in_the_app(app, client, "tiny-version_0", 6, summary.total_energy_j)
