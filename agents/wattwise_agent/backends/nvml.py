"""NVML backend: real NVIDIA GPUs through nvidia-ml-py (``import pynvml``).

What it reads, per owned GPU per tick (docs/agent.md, "NVML caveats", says why these readings):

* energy: the cumulative counter, NVML field 83 (``nvmlDeviceGetTotalEnergyConsumption``, mJ since the
  driver was loaded, Volta and newer). GPUs without it (pre-Volta, vGPU, or the call fails at start)
  are marked ``power_integration`` and the sampler integrates power instead.
* power: field 186 (instant) when the driver supports it, else ``nvmlDeviceGetPowerUsage``, which is a
  1 s average on Ampere-and-newer except GA100 (``power_field`` says which). Superchips (GH200) only
  answer at module scope (CPU + GPU): ``power_scope = "module"``.
* SM clock, utilisation and temperature through their own calls.

Energy and power come from one ``nvmlDeviceGetFieldValues`` call. Only the GPUs the job owns are read:
``--gpus`` or ``CUDA_VISIBLE_DEVICES`` (indices, UUIDs or UUID prefixes, MIG UUIDs), else all. A MIG
slice resolves to its parent GPU, reported once and flagged: NVML has no per-slice power or energy, so
summing slices would count the whole GPU several times.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
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
from wattwise_agent.backends.clocks import NvmlClocks
from wattwise_agent.backends.power_limits import NvmlPowerLimits

log = logging.getLogger(__name__)

# NVML's field ids and enums are fixed by its C ABI; spelled out so a stub library needs no constants.
FI_TOTAL_ENERGY_CONSUMPTION = 83
FI_POWER_AVERAGE = 185
FI_POWER_INSTANT = 186
POWER_SCOPE_GPU = 0
POWER_SCOPE_MODULE = 1
CLOCK_SM = 1
TEMPERATURE_GPU = 0
ARCH_VOLTA = 5
ARCH_NAMES = {
    2: "Kepler", 3: "Maxwell", 4: "Pascal", 5: "Volta", 6: "Turing", 7: "Ampere", 8: "Ada",
    9: "Hopper", 10: "Blackwell", 13: "Rubin",
}
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
# Field value union members by NVML value type.
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
_LEGACY_MIG = re.compile(r"^MIG-(GPU-[0-9a-fA-F-]+)/\d+/\d+$")


def load_nvml() -> Any:
    """Import pynvml and initialise NVML, or raise BackendUnavailable with what to do instead."""
    try:
        import pynvml
    except ImportError:
        raise BackendUnavailable(
            "NVML not available (nvidia-ml-py is not installed): pip install nvidia-ml-py, "
            "or use --backend simulated"
        ) from None
    init_nvml(pynvml)
    return pynvml


def init_nvml(nvml: Any) -> None:
    try:
        nvml.nvmlInit()
    except nvml.NVMLError as exc:
        code = getattr(exc, "value", None)
        if code in (ERROR_LIBRARY_NOT_FOUND, ERROR_DRIVER_NOT_LOADED):
            hint = "no NVIDIA driver on this machine; use --backend simulated"
        else:
            hint = "check the NVIDIA driver and permissions, or use --backend simulated"
        raise BackendUnavailable(f"NVML not available ({exc}): {hint}") from None


def owned_gpu_tokens(explicit: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[list[str] | None, str]:
    """The GPU selectors the job owns and where they came from; None means every GPU."""
    if explicit:
        return [t.strip() for t in explicit if t.strip()], "--gpus"
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return None, "all GPUs"
    return [t.strip() for t in visible.split(",") if t.strip()], "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class _Device:
    index: int
    handle: Any
    uuid: str
    name: str


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlBackend(GpuBackend):
    """Reads the owned GPUs through NVML. ``nvml`` injects the library (tests pass a stub).

    ``local_rank``: a launcher's local rank; of the GPUs this process sees (``CUDA_VISIBLE_DEVICES``, else
    all), read only the one it drives by the launchers' convention: the ``local_rank``-th, or the only one.
    """

    name = "nvml"
    simulated = False

    def __init__(
        self,
        gpus: Sequence[str] | None = None,
        *,
        nvml: Any = None,
        environ: Mapping[str, str] | None = None,
        local_rank: int | None = None,
    ) -> None:
        if nvml is None:
            nvml = load_nvml()
        else:
            init_nvml(nvml)
        self._nvml = nvml
        environ = os.environ if environ is None else environ
        try:
            devices = list_devices(nvml)
            tokens, source = owned_gpu_tokens(gpus, environ)
            strict = source == "--gpus"
            chosen = devices if tokens is None else resolve_owned(nvml, tokens, devices, strict=strict)
            if not chosen:
                raise BackendUnavailable(f"no GPU selected ({source} names none of the {len(devices)} GPUs seen)")
            if local_rank is not None and len(chosen) > 1:
                if local_rank >= len(chosen):
                    raise BackendUnavailable(
                        f"local rank {local_rank} but this process sees {len(chosen)} GPUs ({source}): "
                        "pass gpus= (the GPU this process drives)")
                chosen = [chosen[local_rank]]
            self._devices = chosen
            self._gpus = [inspect_gpu(nvml, d) for d in chosen]
        except BaseException:
            self.close()
            raise
        self._failures: set[tuple[str, str]] = set()

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return self._gpus

    def read(self, t_ms: int) -> list[Reading | None]:
        return [self._read_one(device, gpu) for device, gpu in zip(self._devices, self._gpus)]

    def _read_one(self, device: _Device, gpu: GpuInfo) -> Reading | None:
        nvml, handle = self._nvml, device.handle
        try:
            fields: list[tuple[int, int]] = []
            if gpu.energy_source == ENERGY_COUNTER:
                fields.append((FI_TOTAL_ENERGY_CONSUMPTION, POWER_SCOPE_GPU))
            if gpu.power_field == POWER_INSTANT:
                scope = POWER_SCOPE_MODULE if gpu.power_scope == "module" else POWER_SCOPE_GPU
                fields.append((FI_POWER_INSTANT, scope))
            values = read_fields(nvml, handle, fields) if fields else []
            energy_mj = int(values[0]) if gpu.energy_source == ENERGY_COUNTER else None
            if gpu.power_field == POWER_INSTANT:
                power_mw = int(values[-1])
            else:
                power_mw = int(nvml.nvmlDeviceGetPowerUsage(handle))
        except nvml.NVMLError as exc:
            # Skipping the sample keeps totals exact: the next counter difference covers the gap.
            self._warn_once(gpu.uuid, f"reading skipped ({exc})")
            return None
        return Reading(
            energy_mj=energy_mj,
            power_mw=power_mw,
            sm_clock_mhz=self._optional(gpu, "SM clock", nvml.nvmlDeviceGetClockInfo, handle, CLOCK_SM),
            util_pct=self._optional(gpu, "utilisation", lambda h: nvml.nvmlDeviceGetUtilizationRates(h).gpu, handle),
            temp_c=self._optional(gpu, "temperature", nvml.nvmlDeviceGetTemperature, handle, TEMPERATURE_GPU),
        )

    def _optional(self, gpu: GpuInfo, what: str, call: Any, *args: Any) -> int:
        # Clock, utilisation and temperature are context, not accounting: 0 when NVML cannot say
        # (utilisation is not supported with MIG enabled).
        try:
            return int(call(*args))
        except self._nvml.NVMLError as exc:
            self._warn_once(gpu.uuid, f"{what} unavailable, sent as 0 ({exc})")
            return 0

    def _warn_once(self, uuid: str, message: str) -> None:
        if (uuid, message) not in self._failures:
            self._failures.add((uuid, message))
            log.warning("GPU %s: %s", uuid, message)

    def clocks(self) -> NvmlClocks:
        """SM clock control of the owned GPUs (used only through ``wattwise_agent.clock_guard.ClockActuator``)."""
        return NvmlClocks(self._nvml, [d.handle for d in self._devices], [g.uuid for g in self._gpus])

    def power_limits(self) -> NvmlPowerLimits:
        """Power-limit control of the owned GPUs (used only through ``wattwise_agent.power_guard``)."""
        return NvmlPowerLimits(self._nvml, [d.handle for d in self._devices], [g.uuid for g in self._gpus])

    def close(self) -> None:
        with contextlib.suppress(self._nvml.NVMLError):
            self._nvml.nvmlShutdown()


def list_devices(nvml: Any) -> list[_Device]:
    devices = []
    for index in range(int(nvml.nvmlDeviceGetCount())):
        handle = nvml.nvmlDeviceGetHandleByIndex(index)
        devices.append(
            _Device(index, handle, _text(nvml.nvmlDeviceGetUUID(handle)), _text(nvml.nvmlDeviceGetName(handle)))
        )
    return devices


def resolve_owned(nvml: Any, tokens: Sequence[str], devices: Sequence[_Device], *, strict: bool) -> list[_Device]:
    """Map selectors (index, UUID or prefix, MIG UUID) to physical GPUs, each once, in the order given.

    Like CUDA, an entry that matches nothing ends the list (a warning, or an error for ``--gpus``).
    """
    chosen: list[_Device] = []
    for token in tokens:
        device = _match(nvml, token, devices)
        if device is None:
            if strict:
                raise BackendUnavailable(f"--gpus entry {token!r} matches no GPU on this machine")
            log.warning("CUDA_VISIBLE_DEVICES entry %r matches no GPU: it and the entries after it are ignored", token)
            break
        if device not in chosen:
            chosen.append(device)
    return chosen


def _match(nvml: Any, token: str, devices: Sequence[_Device]) -> _Device | None:
    if token.isdigit():
        index = int(token)
        return next((d for d in devices if d.index == index), None)
    legacy = _LEGACY_MIG.match(token)
    if legacy:
        token = legacy.group(1)
    elif token.startswith("MIG-"):
        try:
            parent = nvml.nvmlDeviceGetDeviceHandleFromMigDeviceHandle(nvml.nvmlDeviceGetHandleByUUID(token))
            token = _text(nvml.nvmlDeviceGetUUID(parent))
        except nvml.NVMLError:
            return None
    if not token.startswith("GPU-"):
        return None
    exact = [d for d in devices if d.uuid == token]
    prefixed = exact or [d for d in devices if d.uuid.startswith(token)]
    return prefixed[0] if len(prefixed) == 1 else None


def read_fields(nvml: Any, handle: Any, fields: Sequence[tuple[int, int]]) -> list[float | int]:
    """One ``nvmlDeviceGetFieldValues`` call; raise NVMLError if any field failed."""
    values = nvml.nvmlDeviceGetFieldValues(handle, list(fields))
    out: list[float | int] = []
    for value in values:
        if value.nvmlReturn != 0:
            raise nvml.NVMLError(value.nvmlReturn)
        out.append(getattr(value.value, _VALUE_MEMBERS.get(int(value.valueType), "ullVal")))
    return out


def _try_fields(nvml: Any, handle: Any, fields: Sequence[tuple[int, int]]) -> list[float | int] | None:
    try:
        return read_fields(nvml, handle, fields)
    except nvml.NVMLError:
        return None


def inspect_gpu(nvml: Any, device: _Device) -> GpuInfo:
    """Work out which energy and power readings this GPU supports."""
    handle = device.handle
    try:
        arch_code: int | None = int(nvml.nvmlDeviceGetArchitecture(handle))
    except nvml.NVMLError:
        arch_code = None
    architecture = ARCH_NAMES.get(arch_code, "unknown") if arch_code is not None else "unknown"
    known_pre_volta = arch_code is not None and arch_code < ARCH_VOLTA
    counter = not known_pre_volta and _try_fields(nvml, handle, [(FI_TOTAL_ENERGY_CONSUMPTION, 0)]) is not None
    power_field, power_scope = POWER_AVERAGE, "gpu"
    if _try_fields(nvml, handle, [(FI_POWER_INSTANT, POWER_SCOPE_GPU)]) is not None:
        power_field = POWER_INSTANT
    elif _try_fields(nvml, handle, [(FI_POWER_INSTANT, POWER_SCOPE_MODULE)]) is not None:
        power_field, power_scope = POWER_INSTANT, "module"
    else:
        try:
            nvml.nvmlDeviceGetPowerUsage(handle)
        except nvml.NVMLError as exc:
            raise BackendUnavailable(f"GPU {device.uuid} reports no power reading ({exc})") from None
    try:
        mig_enabled = int(nvml.nvmlDeviceGetMigMode(handle)[0]) == 1
    except nvml.NVMLError:
        mig_enabled = False
    return GpuInfo(
        index=device.index,
        uuid=device.uuid,
        name=device.name,
        energy_source=ENERGY_COUNTER if counter else POWER_INTEGRATION,
        power_field=power_field,
        architecture=architecture,
        mig_enabled=mig_enabled,
        power_scope=power_scope,
        power_limit_mw=_highest_power_limit_mw(nvml, handle) if power_scope == "gpu" else None,
    )


def _highest_power_limit_mw(nvml: Any, handle: Any) -> int | None:
    """The highest power limit the GPU may be set to, in mW: what bounds a plausible interval of its counter
    (``wattwise_agent.wire_energy``). None where NVML cannot say, or for module power (GH200), which the GPU's
    limit does not cover: the app's ceiling then applies."""
    try:
        _, highest_mw = nvml.nvmlDeviceGetPowerManagementLimitConstraints(handle)
    except nvml.NVMLError:
        return None
    return int(highest_mw) if 0 < int(highest_mw) < 2**31 else None


def probe(*, nvml: Any = None, environ: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every GPU NVML sees, what it supports, its current counter, and whether the job owns it."""
    if nvml is None:
        nvml = load_nvml()
    else:
        init_nvml(nvml)
    environ = os.environ if environ is None else environ
    try:
        devices = list_devices(nvml)
        tokens, _source = owned_gpu_tokens(None, environ)
        owned = devices if tokens is None else resolve_owned(nvml, tokens, devices, strict=False)
        report = []
        for device in devices:
            gpu = inspect_gpu(nvml, device)
            counter = _try_fields(nvml, device.handle, [(FI_TOTAL_ENERGY_CONSUMPTION, 0)])
            report.append(
                {
                    **gpu.open_run_entry(),
                    "energy_counter": gpu.energy_source == ENERGY_COUNTER,
                    "energy_mj": int(counter[0]) if counter and gpu.energy_source == ENERGY_COUNTER else None,
                    "selected": device in owned,
                }
            )
        return report
    finally:
        nvml.nvmlShutdown()
