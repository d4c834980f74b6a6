"""A stand-in for amdsmi at the hardware boundary: the calls the amdsmi backend makes, on scripted GPUs.

Accumulators, power and what each GPU supports are set by the test; nothing here does any accounting.
Replies have the shapes amdsmi's Python bindings give (dicts, "N/A" for what a GPU does not report).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

STATUS_NOT_SUPPORTED = 2
STATUS_NO_PERM = 10
STATUS_IO = 12
STATUS_DRIVER_NOT_LOADED = 34
NA = "N/A"


class AmdSmiException(Exception):
    """Base of amdsmi's errors."""


class AmdSmiLibraryException(AmdSmiException):
    def __init__(self, err_code: int) -> None:
        super().__init__(err_code)
        self.err_code = err_code

    def get_error_code(self) -> int:
        return self.err_code

    def __str__(self) -> str:
        return f"An error occured with code: {self.err_code}"


class AmdSmiClkType(IntEnum):
    SYS = 0
    GFX = 0x1
    MEM = 0x4


class AmdSmiTemperatureType(IntEnum):
    EDGE = 0
    HOTSPOT = 1
    VRAM = 2


class AmdSmiTemperatureMetric(IntEnum):
    CURRENT = 0


@dataclass
class FakeAmdGpu:
    uuid: str
    market_name: str = "AMD Instinct MI300X"
    accumulator: int = 1_000_000  # ticks
    resolution_uj: float = 15.3  # µJ per tick
    accumulator_key: str = "energy_accumulator"  # "power" in older bindings
    accumulator_width_bits: int = 64
    energy_supported: bool = True
    current_power_w: Any = 750
    average_power_w: Any = NA
    gfx_clock_mhz: Any = 2100
    gfx_activity_pct: Any = 98
    hotspot_c: Any = 71
    fail_next_reads: int = 0

    def use_joules(self, joules: float) -> None:
        """Energy used: the accumulator moves on by whole ticks and wraps at its width."""
        ticks = round(joules * 1_000_000 / self.resolution_uj)
        self.accumulator = (self.accumulator + ticks) % 2**self.accumulator_width_bits


class FakeAmdSmi:
    """The amdsmi module as the backend uses it."""

    AmdSmiException = AmdSmiException
    AmdSmiLibraryException = AmdSmiLibraryException
    AmdSmiClkType = AmdSmiClkType
    AmdSmiTemperatureType = AmdSmiTemperatureType
    AmdSmiTemperatureMetric = AmdSmiTemperatureMetric

    def __init__(self, gpus: list[FakeAmdGpu], *, init_error: int | None = None) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.initialised = False

    def amdsmi_init(self, flags: int = 0) -> None:
        if self.init_error is not None:
            raise AmdSmiLibraryException(self.init_error)
        self.initialised = True

    def amdsmi_shut_down(self) -> None:
        self.initialised = False

    def amdsmi_get_processor_handles(self) -> list[FakeAmdGpu]:
        return list(self.gpus)

    def amdsmi_get_gpu_device_uuid(self, handle: FakeAmdGpu) -> str:
        return handle.uuid

    def amdsmi_get_gpu_asic_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        return {"market_name": handle.market_name, "vendor_id": "0x1002"}

    def amdsmi_get_gpu_board_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        return {"product_name": handle.market_name}

    def _check_read(self, handle: FakeAmdGpu) -> None:
        if handle.fail_next_reads > 0:
            handle.fail_next_reads -= 1
            raise AmdSmiLibraryException(STATUS_IO)

    def amdsmi_get_energy_count(self, handle: FakeAmdGpu) -> dict[str, Any]:
        if not handle.energy_supported:
            raise AmdSmiLibraryException(STATUS_NOT_SUPPORTED)
        self._check_read(handle)
        return {handle.accumulator_key: handle.accumulator, "counter_resolution": handle.resolution_uj,
                "timestamp": 0}

    def amdsmi_get_power_info(self, handle: FakeAmdGpu) -> dict[str, Any]:
        return {"current_socket_power": handle.current_power_w, "average_socket_power": handle.average_power_w,
                "gfx_voltage": NA, "soc_voltage": NA, "mem_voltage": NA, "power_limit": 750}

    def amdsmi_get_clock_info(self, handle: FakeAmdGpu, clk_type: AmdSmiClkType) -> dict[str, Any]:
        assert clk_type == AmdSmiClkType.GFX
        return {"clk": handle.gfx_clock_mhz, "min_clk": 500, "max_clk": 2100, "clk_locked": False}

    def amdsmi_get_gpu_activity(self, handle: FakeAmdGpu) -> dict[str, Any]:
        return {"gfx_activity": handle.gfx_activity_pct, "umc_activity": 40, "mm_activity": NA}

    def amdsmi_get_temp_metric(self, handle: FakeAmdGpu, sensor: AmdSmiTemperatureType,
                               metric: AmdSmiTemperatureMetric) -> Any:
        if sensor != AmdSmiTemperatureType.HOTSPOT:
            raise AmdSmiLibraryException(STATUS_NOT_SUPPORTED)  # Instinct GPUs have no edge sensor
        return handle.hotspot_c
