"""AMD GPUs through amdsmi (the ROCm SMI library's Python bindings, ``import amdsmi``).

What it reads, per owned GPU per tick:

* energy: ``amdsmi_get_energy_count``, an accumulator of ticks and the µJ one tick is worth
  (``counter_resolution``). The accumulator is ``energy_accumulator`` in recent bindings and ``power`` in
  older ones. A 32-bit accumulator wraps to 0 at 2^32 ticks (about 66 kJ at 15.3 µJ a tick, minutes at
  full power), so the agent unwraps it, at every reading, into a count that only goes up: a step back
  from below 2^32 is one wrap; a step back from above it (a 64-bit accumulator cannot wrap in a lifetime)
  is a reset (the driver reloaded), counted from zero, as ``wattwise_agent.wire.counter_step_mj`` rules
  for NVML. The unwrapped ticks are kept whole and sent as ``floor`` of their energy in mJ, so no
  remainder is lost. A GPU without the accumulator (a virtual machine guest) is marked
  ``power_integration`` and the sampler integrates power instead.
* power: ``amdsmi_get_power_info``, ``current_socket_power`` (instant, W) where the GPU has it, else
  ``socket_power`` or ``average_socket_power`` (``power_field`` says which kind).
* GFX clock (``amdsmi_get_clock_info``), GFX activity (``amdsmi_get_gpu_activity``) and the hotspot
  temperature (``amdsmi_get_temp_metric``): context, sent as 0 where the GPU cannot say.

Only the GPUs the job owns are read: ``--gpus`` (indices or UUIDs), else ``ROCR_VISIBLE_DEVICES``,
``HIP_VISIBLE_DEVICES`` or ``CUDA_VISIBLE_DEVICES`` (the first set), else all. amdsmi is imported only
when this backend is made; amdsmi's errors become :class:`BackendUnavailable` (cannot start) or a skipped
reading said once (a read failed), each with what the error code means.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from wattwise_agent.backends.base import (
    ENERGY_COUNTER,
    POWER_AVERAGE,
    POWER_INSTANT,
    POWER_INTEGRATION,
    BackendUnavailable,
    GpuBackend,
    GpuInfo,
    Reading,
)

log = logging.getLogger(__name__)

# amdsmi_status_t values (amdsmi.h); spelled out so a stand-in library needs no constants.
STATUS_NOT_SUPPORTED = 2
STATUS_FAIL_LOAD_MODULE = 4
STATUS_NO_PERM = 10
STATUS_INIT_ERROR = 18
STATUS_NOT_FOUND = 31
STATUS_NOT_INIT = 32
STATUS_DRIVER_NOT_LOADED = 34
_MEANINGS = {
    STATUS_NOT_SUPPORTED: "not supported on this GPU",
    STATUS_FAIL_LOAD_MODULE: "the amdgpu kernel module could not be loaded",
    STATUS_NO_PERM: "permission denied: add the user to the render and video groups",
    STATUS_INIT_ERROR: "the library could not initialise",
    STATUS_NOT_FOUND: "device not found",
    STATUS_NOT_INIT: "the library is not initialised",
    STATUS_DRIVER_NOT_LOADED: "the amdgpu driver is not loaded",
}
ACCUMULATOR_WRAP = 2**32
UJ_PER_MJ = 1000
_VISIBLE = ("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "CUDA_VISIBLE_DEVICES")
_POWER_KEYS = (("current_socket_power", POWER_INSTANT), ("socket_power", POWER_AVERAGE),
               ("average_socket_power", POWER_AVERAGE))


def error_code(exc: BaseException) -> int | None:
    """The amdsmi status code an amdsmi exception carries, if any."""
    getter = getattr(exc, "get_error_code", None)
    try:
        return int(getter()) if getter is not None else None
    except (TypeError, ValueError):
        return None


def describe(exc: BaseException) -> str:
    """An amdsmi error in words: what its code means, then the library's own text."""
    code = error_code(exc)
    meaning = _MEANINGS.get(code) if code is not None else None
    return f"{meaning} ({exc})" if meaning else str(exc)


def load_amdsmi() -> Any:
    """Import amdsmi and initialise it, or raise BackendUnavailable with what to do instead."""
    try:
        import amdsmi
    except ImportError:
        raise BackendUnavailable(
            "amdsmi not available (the amdsmi Python package is not installed): install it from your ROCm "
            "(pip install /opt/rocm/share/amd_smi), or use --backend nvml or simulated"
        ) from None
    init_amdsmi(amdsmi)
    return amdsmi


def init_amdsmi(amdsmi: Any) -> None:
    try:
        amdsmi.amdsmi_init()
    except amdsmi.AmdSmiException as exc:
        code = error_code(exc)
        if code in (STATUS_DRIVER_NOT_LOADED, STATUS_FAIL_LOAD_MODULE, STATUS_INIT_ERROR):
            hint = "no AMD GPU driver (amdgpu) on this machine; use --backend nvml or simulated"
        elif code == STATUS_NO_PERM:
            hint = "add the user to the render and video groups"
        else:
            hint = "check the amdgpu driver and ROCm installation"
        raise BackendUnavailable(f"amdsmi not available ({describe(exc)}): {hint}") from None


def owned_tokens(explicit: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[list[str] | None, str]:
    """The GPU selectors the job owns and where they came from; None means every GPU."""
    if explicit:
        return [t.strip() for t in explicit if t.strip()], "--gpus"
    for variable in _VISIBLE:
        visible = environ.get(variable)
        if visible is not None:
            return [t.strip() for t in visible.split(",") if t.strip()], variable
    return None, "all GPUs"


@dataclass
class _Device:
    index: int
    handle: Any
    uuid: str
    name: str
    resolution_uj: float = 0.0  # µJ per accumulator tick
    raw_ticks: int | None = None  # the accumulator at the last reading
    total_ticks: int = 0  # unwrapped: only goes up


def unwrapped_step_ticks(before: int, after: int) -> int:
    """Ticks between two accumulator readings: forwards the difference; a step back from below 2^32 wrapped
    around a 32-bit accumulator; any other step back is a reset, counted from zero."""
    if after >= before:
        return after - before
    if before < ACCUMULATOR_WRAP:
        return after + ACCUMULATOR_WRAP - before
    return after


def _accumulator(reply: Mapping[str, Any]) -> tuple[int, float]:
    ticks = reply.get("energy_accumulator", reply.get("power"))
    return int(ticks), float(reply["counter_resolution"])


def _number(value: Any) -> float | None:
    """amdsmi answers "N/A" for what a GPU does not report."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


class AmdSmiBackend(GpuBackend):
    """Reads the owned AMD GPUs through amdsmi. ``amdsmi`` injects the library (tests pass a stand-in)."""

    name = "amdsmi"
    simulated = False

    def __init__(
        self,
        gpus: Sequence[str] | None = None,
        *,
        amdsmi: Any = None,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        if amdsmi is None:
            amdsmi = load_amdsmi()
        else:
            init_amdsmi(amdsmi)
        self._smi = amdsmi
        self._failures: set[tuple[str, str]] = set()
        environ = os.environ if environ is None else environ
        try:
            devices = self._list_devices()
            tokens, source = owned_tokens(gpus, environ)
            chosen = devices if tokens is None else self._resolve(tokens, devices, strict=source == "--gpus")
            if not chosen:
                raise BackendUnavailable(f"no GPU selected ({source} names none of the {len(devices)} AMD GPUs seen)")
            self._devices = chosen
            self._gpus = [self._inspect(d) for d in chosen]
        except BaseException:
            self.close()
            raise

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return self._gpus

    def _list_devices(self) -> list[_Device]:
        smi = self._smi
        try:
            handles = list(smi.amdsmi_get_processor_handles())
            devices = []
            for index, handle in enumerate(handles):
                devices.append(_Device(index, handle, str(smi.amdsmi_get_gpu_device_uuid(handle)), self._name(handle)))
        except smi.AmdSmiException as exc:
            raise BackendUnavailable(f"amdsmi cannot list the GPUs ({describe(exc)})") from None
        if not devices:
            raise BackendUnavailable("amdsmi sees no AMD GPU on this machine; use --backend nvml or simulated")
        return devices

    def _name(self, handle: Any) -> str:
        smi = self._smi
        for call, key in (("amdsmi_get_gpu_asic_info", "market_name"), ("amdsmi_get_gpu_board_info", "product_name")):
            with contextlib.suppress(smi.AmdSmiException, KeyError, TypeError, AttributeError):
                name = getattr(smi, call)(handle)[key]
                if isinstance(name, str) and name.strip() and name != "N/A":
                    return name.strip()
        return "AMD GPU"

    @staticmethod
    def _resolve(tokens: Sequence[str], devices: Sequence[_Device], *, strict: bool) -> list[_Device]:
        """Selectors (index, UUID or UUID prefix) to GPUs, each once, in order; like HIP, an entry that
        matches nothing ends the list (an error for ``--gpus``)."""
        chosen: list[_Device] = []
        for token in tokens:
            if token.isdigit():
                found = [d for d in devices if d.index == int(token)]
            else:
                found = [d for d in devices if d.uuid == token] or [d for d in devices if d.uuid.startswith(token)]
            if len(found) != 1:
                if strict:
                    raise BackendUnavailable(f"--gpus entry {token!r} matches no AMD GPU on this machine")
                log.warning("visible-devices entry %r matches no AMD GPU: it and the entries after it are ignored",
                            token)
                break
            if found[0] not in chosen:
                chosen.append(found[0])
        return chosen

    def _inspect(self, device: _Device) -> GpuInfo:
        """Which energy and power readings this GPU has; takes the accumulator's first value."""
        smi = self._smi
        energy_source = POWER_INTEGRATION
        try:
            device.raw_ticks, device.resolution_uj = _accumulator(smi.amdsmi_get_energy_count(device.handle))
            device.total_ticks = device.raw_ticks
            if device.resolution_uj > 0:
                energy_source = ENERGY_COUNTER
        except (smi.AmdSmiException, KeyError, TypeError, ValueError) as exc:
            log.warning("AMD GPU %s: no energy accumulator (%s): energy integrated from power, flagged as "
                        "estimated", device.uuid, describe(exc))
        power_field = None
        try:
            info = smi.amdsmi_get_power_info(device.handle)
            power_field = next((kind for key, kind in _POWER_KEYS if _number(info.get(key)) is not None), None)
        except smi.AmdSmiException as exc:
            raise BackendUnavailable(f"AMD GPU {device.uuid} reports no power reading ({describe(exc)})") from None
        if power_field is None:
            raise BackendUnavailable(f"AMD GPU {device.uuid} reports no power reading (every power field is N/A)")
        return GpuInfo(index=device.index, uuid=device.uuid, name=device.name, energy_source=energy_source,
                       power_field=power_field, architecture="AMD")

    def read(self, t_ms: int) -> list[Reading | None]:
        return [self._read_one(device, gpu) for device, gpu in zip(self._devices, self._gpus)]

    def _read_one(self, device: _Device, gpu: GpuInfo) -> Reading | None:
        smi, handle = self._smi, device.handle
        try:
            energy_mj = self._energy_mj(device) if gpu.energy_source == ENERGY_COUNTER else None
            power_mw = self._power_mw(handle)
        except (smi.AmdSmiException, KeyError, TypeError, ValueError) as exc:
            # Skipping the sample keeps totals exact: the next accumulator difference covers the gap.
            self._warn_once(gpu.uuid, f"reading skipped ({describe(exc)})")
            return None
        return Reading(
            energy_mj=energy_mj,
            power_mw=power_mw,
            sm_clock_mhz=self._optional(gpu, "GFX clock", self._clock_mhz, handle),
            util_pct=self._optional(gpu, "GFX activity", lambda h: smi.amdsmi_get_gpu_activity(h)["gfx_activity"],
                                    handle),
            temp_c=self._optional(gpu, "temperature", self._temp_c, handle),
        )

    def _energy_mj(self, device: _Device) -> int:
        raw, _ = _accumulator(self._smi.amdsmi_get_energy_count(device.handle))
        if device.raw_ticks is not None:
            device.total_ticks += unwrapped_step_ticks(device.raw_ticks, raw)
        else:
            device.total_ticks = raw
        device.raw_ticks = raw
        return int(device.total_ticks * device.resolution_uj // UJ_PER_MJ)

    def _power_mw(self, handle: Any) -> int:
        info = self._smi.amdsmi_get_power_info(handle)
        for key, _kind in _POWER_KEYS:
            watts = _number(info.get(key))
            if watts is not None:
                return round(watts * 1000)
        raise ValueError("no power reading (every power field is N/A)")

    def _clock_mhz(self, handle: Any) -> float:
        smi = self._smi
        info = smi.amdsmi_get_clock_info(handle, smi.AmdSmiClkType.GFX)
        value = _number(info.get("clk", info.get("cur_clk")))
        if value is None:
            raise ValueError("N/A")
        return value

    def _temp_c(self, handle: Any) -> float:
        smi = self._smi
        kinds = smi.AmdSmiTemperatureType
        # The hotspot sensor (JUNCTION in older bindings): Instinct GPUs have no edge sensor.
        sensor = next((getattr(kinds, n) for n in ("HOTSPOT", "JUNCTION", "EDGE") if hasattr(kinds, n)), None)
        value = _number(smi.amdsmi_get_temp_metric(handle, sensor, smi.AmdSmiTemperatureMetric.CURRENT))
        if value is None:
            raise ValueError("N/A")
        return value

    def _optional(self, gpu: GpuInfo, what: str, call: Any, *args: Any) -> int:
        # Clock, activity and temperature are context, not accounting: 0 when the GPU cannot say.
        try:
            return int(call(*args))
        except (self._smi.AmdSmiException, KeyError, TypeError, ValueError) as exc:
            self._warn_once(gpu.uuid, f"{what} unavailable, sent as 0 ({describe(exc)})")
            return 0

    def _warn_once(self, uuid: str, message: str) -> None:
        if (uuid, message) not in self._failures:
            self._failures.add((uuid, message))
            log.warning("AMD GPU %s: %s", uuid, message)

    def close(self) -> None:
        with contextlib.suppress(self._smi.AmdSmiException):
            self._smi.amdsmi_shut_down()
