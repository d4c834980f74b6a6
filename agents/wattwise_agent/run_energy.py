"""What a stream measured, counted from the batches it made exactly as the app counts them.

The app's totals are sums, over a run's batches, of each device's counter differences
(``wattwise_agent.wire.count_window_mj``, the one rule, implausible intervals counting 0 J); the agent's summary is the same sum over the
same batches, in whole mJ, so after an upload the app's ``run_summary`` gives the same energy per device
(to float rounding), the same duration (first to last reading) and, for a run placed by ``zone``/``region``
with no hourly intensity in the app, the same emissions (``wattwise_agent.grid_intensity``).

``EnergyTally`` is fed every batch payload as the streamer makes it; ``snapshot`` adds the readings still
in the open window, so "energy so far" is current to the last reading, not to the last batch.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import numpy as np

from wattwise_agent import wire
from wattwise_agent.grid_intensity import Emissions, RunPlace, emissions

_MJ_PER_J = 1000
_MS_PER_S = 1000


@dataclass(frozen=True)
class RunEnergy:
    """A stream's measured energy, per GPU, per device and per component, over its readings, with emissions.

    Named as the app's ``run_summary`` names them: ``energy_j`` per GPU UUID (its ``gpus``),
    ``devices_energy_j`` per device UUID: the GPUs and, when the stream reads RAPL, the CPU packages and
    DRAM (its ``devices``), ``components_j`` per component (``gpu``, ``cpu``, ``dram``: its ``components``),
    and ``total_energy_j``, every device's (its ``energy_j``). ``duration_s`` runs from the first reading
    of any device to the last. ``emissions`` is None when the stream was given neither a zone nor a region.
    """

    devices_energy_j: dict[str, float]
    component_of: dict[str, str]  # device UUID -> component
    samples: int
    first_ms: int | None
    last_ms: int | None
    steps: int
    estimated: bool  # some device has no energy counter: its energy integrates power
    emissions: Emissions | None = None

    @property
    def energy_j(self) -> dict[str, float]:
        """Energy per GPU UUID, in J."""
        return {uuid: j for uuid, j in self.devices_energy_j.items()
                if self.component_of.get(uuid, wire.COMPONENT_GPU) == wire.COMPONENT_GPU}

    @property
    def gpu_energy_j(self) -> dict[str, float]:
        """``energy_j`` (GPUs only), by the name it had first."""
        return self.energy_j

    @property
    def components_j(self) -> dict[str, float]:
        """Energy per component (``gpu``, then ``cpu`` and ``dram`` when read), in J."""
        out: dict[str, float] = {}
        for component in wire.COMPONENTS:
            devices = [j for uuid, j in self.devices_energy_j.items() if self.component_of.get(uuid) == component]
            if devices:
                out[component] = sum(devices)
        return out

    @property
    def total_energy_j(self) -> float:
        """Every device's energy, in J."""
        return sum(self.devices_energy_j.values())

    @property
    def duration_s(self) -> float:
        if self.first_ms is None or self.last_ms is None:
            return 0.0
        return (self.last_ms - self.first_ms) / _MS_PER_S

    @property
    def energy_per_step_j(self) -> float | None:
        return self.total_energy_j / self.steps if self.steps else None

    @property
    def emissions_g(self) -> float | None:
        return None if self.emissions is None else self.emissions.emissions_g

    def as_dict(self) -> dict[str, Any]:
        return {
            "energy_j": self.total_energy_j,
            "gpus": self.energy_j,
            "devices": {uuid: {"energy_j": j, "component": self.component_of.get(uuid, wire.COMPONENT_GPU)}
                        for uuid, j in self.devices_energy_j.items()},
            "components": self.components_j,
            "duration_s": self.duration_s,
            "samples": self.samples,
            "steps": self.steps,
            "energy_per_step_j": self.energy_per_step_j,
            "estimated": self.estimated,
            "emissions_g": self.emissions_g,
            "emissions": None if self.emissions is None else self.emissions.as_dict(),
        }


@dataclass
class _Device:
    component: str
    estimated: bool
    energy_mj: int = 0
    samples: int = 0


def _year_of_ms(t_ms: int) -> int:
    return datetime.fromtimestamp(t_ms / _MS_PER_S, tz=timezone.utc).year


def _year_start_ms(year: int) -> int:
    return int(datetime(year, 1, 1, tzinfo=timezone.utc).timestamp()) * _MS_PER_S


class EnergyTally:
    """Sums batch payloads as the app does; thread-safe (the sampling loop adds, anyone may read).

    ``ceiling_w`` bounds the intervals of devices that send no power limit, as the app's
    ``WATTWISE_MAX_GPU_POWER_W`` does; None: that variable, read now (:func:`wattwise_agent.wire.max_power_w_from_env`).
    """

    def __init__(self, place: RunPlace | None = None, ceiling_w: float | None = None) -> None:
        self.place = place
        self.ceiling_w = wire.max_power_w_from_env() if ceiling_w is None else ceiling_w
        self._lock = threading.Lock()
        self._devices: dict[str, _Device] = {}
        self._by_year_mj: dict[int, int] = {}
        self._steps = 0
        self._span = _Span(None, None)

    def add_batches(self, payloads: Iterable[Mapping[str, Any]]) -> None:
        with self._lock:
            for payload in payloads:
                _count(payload, self._devices, self._by_year_mj, self._span, self.ceiling_w)
                self._steps += _steps_in(payload)

    def snapshot(self, open_window: Mapping[str, Any] | None = None) -> RunEnergy:
        """The energy of every batch added, plus ``open_window`` (readings not yet in a batch) if given."""
        with self._lock:
            devices = {uuid: _Device(d.component, d.estimated, d.energy_mj, d.samples)
                       for uuid, d in self._devices.items()}
            by_year = dict(self._by_year_mj)
            steps, span = self._steps, _Span(self._span.first_ms, self._span.last_ms)
        if open_window is not None:
            _count(open_window, devices, by_year, span, self.ceiling_w)
            steps += _steps_in(open_window)
        return self._summary(devices, by_year, steps, span)

    def _summary(self, devices: dict[str, _Device], by_year_mj: dict[int, int], steps: int, span: _Span) -> RunEnergy:
        return RunEnergy(
            devices_energy_j={uuid: d.energy_mj / _MJ_PER_J for uuid, d in devices.items()},
            component_of={uuid: d.component for uuid, d in devices.items()},
            samples=sum(d.samples for d in devices.values()),
            first_ms=span.first_ms,
            last_ms=span.last_ms,
            steps=steps,
            estimated=any(d.estimated for d in devices.values()),
            emissions=None if self.place is None else emissions(
                self.place, {year: mj / _MJ_PER_J for year, mj in by_year_mj.items()}),
        )


@dataclass
class _Span:
    first_ms: int | None
    last_ms: int | None


def _steps_in(payload: Mapping[str, Any]) -> int:
    return sum(1 for event in payload.get("events", ()) if event.get("kind") == "step_end")


def _count(
    payload: Mapping[str, Any], devices: dict[str, _Device], by_year: dict[int, int], span: _Span, ceiling_w: float
) -> None:
    """Add one batch payload's counter differences per device and per UTC year of the reading ending each."""
    for entry in payload["gpus"]:
        t_ms = np.asarray(entry["t_ms"], dtype=np.int64)
        if t_ms.size == 0:
            continue
        prev = None if entry.get("prev_t_ms") is None else (entry["prev_t_ms"], entry["prev_energy_mj"])
        limit_w = wire.power_limit_w(entry.get("power_limit_mw"), ceiling_w)
        deltas = wire.count_window_mj(np.asarray(entry["energy_mj"], dtype=np.int64), t_ms, prev, limit_w).deltas_mj
        device = devices.get(entry["uuid"])
        if device is None:
            device = devices[entry["uuid"]] = _Device(
                entry.get("component", wire.COMPONENT_GPU), entry["energy_source"] == wire.POWER_INTEGRATION)
        device.energy_mj += int(deltas.sum())
        device.samples += int(t_ms.size)
        first, last = int(t_ms[0]), int(t_ms[-1])
        span.first_ms = first if span.first_ms is None else min(span.first_ms, first)
        span.last_ms = last if span.last_ms is None else max(span.last_ms, last)
        first_year, last_year = _year_of_ms(first), _year_of_ms(last)
        if first_year == last_year:
            by_year[first_year] = by_year.get(first_year, 0) + int(deltas.sum())
            continue
        # A window across New Year: each interval counts in the year of the reading that ends it.
        for year in range(first_year, last_year + 1):
            lo = int(np.searchsorted(t_ms, _year_start_ms(year), side="left"))
            hi = int(np.searchsorted(t_ms, _year_start_ms(year + 1), side="left"))
            if hi > lo:
                by_year[year] = by_year.get(year, 0) + int(deltas[lo:hi].sum())
