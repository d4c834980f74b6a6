"""What telemetry tells the apps above it, without knowing them: they connect receivers (carbon, to
keep its stored figures in step with the energy). Telemetry's own receivers replace the run's version token
(:mod:`dashboard.telemetry.versions`), so what is cached of the run (pages, plan figures) is not read again.

Every signal is sent after the transaction that stored the change has committed, with ``run_id``.
Receivers must not raise: ingest logs and ignores what they raise, so a broken receiver can never
lose a batch.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.dispatch import Signal

log = logging.getLogger(__name__)

samples_stored = Signal()
"""Samples of run ``run_id`` were stored: sent once per transaction that stored any (a batch, or a group of
batches stored together), never for duplicates alone."""

run_closed = Signal()
"""Every agent session of run ``run_id`` has closed: the run is finished."""

run_changed = Signal()
"""Something else shown about run ``run_id`` changed: its units of work were entered or cleared."""


def announce(signal: Signal, run_id: int) -> None:
    """Send ``signal`` once the current transaction commits; what a receiver raises is logged, never raised."""

    def send() -> None:
        for receiver, result in signal.send_robust(sender=None, run_id=run_id):
            if isinstance(result, Exception):
                log.error("receiver %r failed for run %s", receiver, run_id, exc_info=result)

    transaction.on_commit(send)
