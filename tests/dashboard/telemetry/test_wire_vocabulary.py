"""What telemetry stores about GPUs and refused messages is spelled as the wire format spells it."""

from __future__ import annotations

from dashboard.telemetry.models import Gpu, Rejection
from wattwise_agent import wire


def test_gpu_energy_sources_and_power_fields_are_the_wire_values():
    assert tuple(Gpu.EnergySource.values) == wire.ENERGY_SOURCES
    assert tuple(Gpu.PowerField.values) == wire.POWER_FIELDS


def test_rejections_are_recorded_under_the_wire_message_kinds_or_as_a_whole_request():
    # "request": refused at the HTTP ingest before any envelope could be read, or of no kind the wire knows.
    assert set(Rejection.Kind.values) == set(wire.TASKS_BY_KIND) | {Rejection.Kind.REQUEST}
