"""What the framework callbacks share: one training run's Tracker, its step markers and the figures they log.

A callback opens the Tracker when training starts (``begin``), marks each optimizer step (``step``), asks
for the energy so far when the framework logs (``figures``) and closes the Tracker when training ends
(``end``). The Tracker stays readable afterwards (``tracker.summary``).
"""

from __future__ import annotations

import atexit
import logging
from typing import Any

from wattwise_agent.torch_hooks import Tracker

log = logging.getLogger(__name__)

# The keys the callbacks add to the framework's logs (and so to W&B, MLflow, TensorBoard, CSV, ...).
ENERGY_J = "energy_j"
ENERGY_PER_STEP_J = "energy_per_step_j"
EMISSIONS_G = "emissions_g"
# With optimize_power_limit, once it has chosen: the limit kept and its measured energy saving per step.
POWER_LIMIT_W = "power_limit_w"
POWER_LIMIT_SAVING_PCT = "power_limit_energy_saving_pct"


class TrainingRun:
    """A Tracker opened and closed by a framework's callbacks. ``run``: the run's name, or None to take the
    name the framework gives (``begin``'s ``default_name``); ``tracker_options``: Tracker's keywords."""

    def __init__(self, run: str | None, tracker_options: dict[str, Any]) -> None:
        if run is not None and not run.strip():
            raise ValueError("run must be a non-empty name, or None to name it from the trainer")
        self.run = run
        self._options = tracker_options
        self.tracker: Tracker | None = None  # the latest run's, kept after it ends
        self._open = False
        self._last_step: int | None = None

    def begin(self, default_name: str) -> None:
        """Open a Tracker for a new run (a trainer may train more than once with the same callback)."""
        if self._open:
            # Training that raised never reached the end (the Trainer has no event for it): that run is over.
            log.warning("the previous training run %r did not end: closing it before the next one",
                        self.tracker.run if self.tracker else "")
            self.end()
        tracker = Tracker(self.run or default_name, **self._options)
        tracker.__enter__()
        self.tracker, self._last_step, self._open = tracker, None, True
        # A program that dies of a training error still closes the run (close_run sent, run file complete).
        atexit.register(self.end)

    def step(self, number: int) -> None:
        """Mark the end of optimizer step ``number``, once (gradient accumulation repeats the number)."""
        if not self._open or self.tracker is None or number == self._last_step:
            return
        self.tracker.step(number)
        self._last_step = number

    def work(self, **totals: int | None) -> None:
        """The run's units of work so far (``steps``, ``samples``, ``tokens``), as the framework counts them."""
        if self._open and self.tracker is not None:
            try:
                self.tracker.set_work(**{unit: n for unit, n in totals.items() if n})
            except ValueError:  # never take the training down with the meter
                log.exception("units of work not recorded")

    def figures(self) -> dict[str, float]:
        """The energy so far, to the Tracker's last reading, counted as the app counts it: ``energy_j`` (every
        device measured), ``energy_per_step_j`` once a step is counted, ``emissions_g`` with a zone or region.
        Empty while there is nothing to say: no run open, or this process leaves the measuring to another."""
        if not self._open or self.tracker is None:
            return {}
        measured = self.tracker.energy_so_far()
        if measured is None:
            return {}
        figures = {ENERGY_J: measured.total_energy_j}
        if measured.energy_per_step_j is not None:
            figures[ENERGY_PER_STEP_J] = measured.energy_per_step_j
        if measured.emissions_g is not None:
            figures[EMISSIONS_G] = measured.emissions_g
        choice = self.tracker.power_limit.choice if self.tracker.power_limit is not None else None
        if choice is not None:
            figures[POWER_LIMIT_W] = float(choice.limit_w)
            figures[POWER_LIMIT_SAVING_PCT] = choice.energy_saving_pct
        return figures

    def end(self, exc: BaseException | None = None) -> None:
        """Close the Tracker: the last window and ``close_run`` are sent."""
        if not self._open or self.tracker is None:
            return
        self._open = False
        atexit.unregister(self.end)
        self.tracker.__exit__(type(exc) if exc is not None else None, exc,
                              exc.__traceback__ if exc is not None else None)


def callback_class(behaviour: type, framework_callback: type, framework: str, module: str) -> type:
    """``WattwiseCallback`` of an integration: ``behaviour`` mixed into the framework's own callback base
    (built when first asked for, so importing the integration imports no framework)."""
    return type("WattwiseCallback", (behaviour, framework_callback), {
        "__module__": module,
        "__qualname__": "WattwiseCallback",
        "__doc__": f"Measures a {framework} run's GPU energy with a Tracker: "
                   "``WattwiseCallback(run=None, **tracker_options)``.",
    })
