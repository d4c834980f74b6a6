"""What telemetry tells the apps above it, without knowing them: they connect receivers (carbon, to
keep its stored figures in step with the energy).

Both signals are sent after the transaction that stored the change has committed, with ``run_id``.
Receivers must not raise: ingest logs and ignores what they raise, so a broken receiver can never
lose a batch.
"""

from __future__ import annotations

from django.dispatch import Signal

samples_stored = Signal()
"""A batch of samples was stored for run ``run_id`` (sent once per stored batch, never for duplicates)."""

run_closed = Signal()
"""Every agent session of run ``run_id`` has closed: the run is finished."""
