"""A stand-in for pynvml at the hardware boundary: the calls the NVML backend makes, on scripted GPUs.

Counters, power and capabilities are set by the test; nothing here does any accounting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

NVML_SUCCESS = 0
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_LIBRARY_NOT_FOUND = 12
NVML_ERROR_GPU_IS_LOST = 15
_MESSAGES = {
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_LIBRARY_NOT_FOUND: "NVML Shared Library Not Found",
    NVML_ERROR_GPU_IS_LOST: "GPU is lost",
}
VALUE_TYPE_UNSIGNED_INT = 1
VALUE_TYPE_UNSIGNED_LONG_LONG = 3


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGpu:
    uuid: str
    name: str = "NVIDIA H100 80GB HBM3"
    arch: int = 9  # Hopper
    energy_mj: int = 5_000_000_000
    power_mw: int = 300_000
    counter_works: bool = True
    instant_power: bool = True
    mig_mode: int = 0
    mig_slices: list[str] = field(default_factory=list)
    sm_clock_mhz: int = 1980
    util_pct: int = 95
    temp_c: int = 61
    fail_next_reads: int = 0
    field_calls: int = 0
    memory_clocks_mhz: list[int] = field(default_factory=lambda: [2619, 1593])
    graphics_clocks_mhz: list[int] = field(default_factory=lambda: list(range(1980, 195, -15)))
    clock_permission: bool = True  # False: locking fails as without root / CAP_SYS_ADMIN
    power_limit_mw: int = 700_000
    power_limit_range_mw: tuple[int, int] | None = (200_000, 700_000)  # None: NVML cannot say
    default_power_limit_mw: int = 700_000


@dataclass(frozen=True)
class FakeMig:
    uuid: str
    parent: FakeGpu


class _Value:
    def __init__(self, **values: int) -> None:
        self.__dict__.update(values)


class _FieldValue:
    def __init__(self, field_id: int, scope: int, ret: int, value_type: int, value: int) -> None:
        self.fieldId = field_id
        self.scopeId = scope
        self.nvmlReturn = ret
        self.valueType = value_type
        self.value = _Value(ullVal=value, uiVal=value)


class FakeNvml:
    """Module-like object: pass as ``NvmlBackend(nvml=...)`` or put in ``sys.modules['pynvml']``."""

    NVMLError = NVMLError

    def __init__(self, gpus: list[FakeGpu], *, library_missing: bool = False) -> None:
        self.gpus = gpus
        self.library_missing = library_missing
        self.initialised = False
        # Every clock-setting call, in order: ("lock", uuid, min_mhz, max_mhz) or ("reset", uuid).
        self.clock_calls: list[tuple[Any, ...]] = []

    def nvmlInit(self) -> None:
        if self.library_missing:
            raise NVMLError(NVML_ERROR_LIBRARY_NOT_FOUND)
        self.initialised = True

    def nvmlShutdown(self) -> None:
        self.initialised = False

    def nvmlDeviceGetCount(self) -> int:
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        return self.gpus[index]

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> FakeGpu | FakeMig:
        for gpu in self.gpus:
            if gpu.uuid == uuid:
                return gpu
            if uuid in gpu.mig_slices:
                return FakeMig(uuid, gpu)
        raise NVMLError(13)

    def nvmlDeviceGetDeviceHandleFromMigDeviceHandle(self, handle: FakeMig) -> FakeGpu:
        return handle.parent

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        return handle.uuid

    def nvmlDeviceGetName(self, handle: FakeGpu) -> str:
        return handle.name

    def nvmlDeviceGetArchitecture(self, handle: FakeGpu) -> int:
        return handle.arch

    def nvmlDeviceGetMigMode(self, handle: FakeGpu) -> list[int]:
        return [handle.mig_mode, handle.mig_mode]

    def _check_read(self, handle: FakeGpu) -> None:
        if handle.fail_next_reads > 0:
            handle.fail_next_reads -= 1
            raise NVMLError(NVML_ERROR_GPU_IS_LOST)

    def nvmlDeviceGetFieldValues(self, handle: FakeGpu, fields: list[tuple[int, int]]) -> list[_FieldValue]:
        self._check_read(handle)
        handle.field_calls += 1
        out = []
        for field_id, scope in fields:
            if field_id == 83:
                ok = handle.counter_works and handle.arch >= 5
                out.append(_FieldValue(83, scope, 0 if ok else NVML_ERROR_NOT_SUPPORTED,
                                       VALUE_TYPE_UNSIGNED_LONG_LONG, handle.energy_mj if ok else 0))
            elif field_id == 186:
                ok = handle.instant_power and scope == 0
                out.append(_FieldValue(186, scope, 0 if ok else NVML_ERROR_NOT_SUPPORTED,
                                       VALUE_TYPE_UNSIGNED_INT, handle.power_mw if ok else 0))
            else:
                out.append(_FieldValue(field_id, scope, NVML_ERROR_NOT_SUPPORTED, 0, 0))
        return out

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: FakeGpu) -> tuple[int, int]:
        if handle.power_limit_range_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return handle.power_limit_range_mw

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._check_read(handle)
        return handle.power_mw

    def nvmlDeviceGetClockInfo(self, handle: FakeGpu, clock: int) -> int:
        return handle.sm_clock_mhz

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> Any:
        if handle.mig_mode:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)  # as on real GPUs in MIG mode
        return _Value(gpu=handle.util_pct, memory=40)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        return handle.temp_c

    def nvmlDeviceGetSupportedMemoryClocks(self, handle: FakeGpu) -> list[int]:
        return list(handle.memory_clocks_mhz)

    def nvmlDeviceGetSupportedGraphicsClocks(self, handle: FakeGpu, memory_mhz: int) -> list[int]:
        if memory_mhz not in handle.memory_clocks_mhz:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        return list(handle.graphics_clocks_mhz) if memory_mhz == max(handle.memory_clocks_mhz) else [1000]

    def nvmlDeviceSetGpuLockedClocks(self, handle: FakeGpu, min_mhz: int, max_mhz: int) -> None:
        self.clock_calls.append(("lock", handle.uuid, min_mhz, max_mhz))
        if not handle.clock_permission:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        handle.sm_clock_mhz = max_mhz

    def nvmlDeviceResetGpuLockedClocks(self, handle: FakeGpu) -> None:
        self.clock_calls.append(("reset", handle.uuid))
        if not handle.clock_permission:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        handle.sm_clock_mhz = 1980

    def nvmlDeviceGetPowerManagementDefaultLimit(self, handle: FakeGpu) -> int:
        return handle.default_power_limit_mw

    def nvmlDeviceSetPowerManagementLimit(self, handle: FakeGpu, limit_mw: int) -> None:
        self.clock_calls.append(("power_limit", handle.uuid, limit_mw))
        if not handle.clock_permission:
            raise NVMLError(NVML_ERROR_NO_PERMISSION)
        if handle.power_limit_range_mw is None:
            raise NVMLError(NVML_ERROR_NOT_SUPPORTED)
        low, high = handle.power_limit_range_mw
        if not low <= limit_mw <= high:
            raise NVMLError(NVML_ERROR_INVALID_ARGUMENT)
        handle.power_limit_mw = limit_mw
