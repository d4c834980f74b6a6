"""A powercap sysfs tree at the hardware boundary: the files the RAPL reader opens, laid out as Linux does.

Under a temporary directory: the control type ``intel-rapl``, one zone ``intel-rapl:N`` per package
(``name`` ``package-N``) with its subzones ``intel-rapl:N:M`` (``core``, ``uncore``, ``dram``), each also
linked at the top as sysfs does, and optionally a ``psys`` zone. Counters are set by the test and wrap
to 0 at ``max_energy_range_uj`` as the hardware's do; nothing here does any accounting.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

INTEL_MAX_RANGE_UJ = 262_143_328_850  # what a Xeon reports: 2^32 counter units of 61.035 µJ


class FakeRapl:
    def __init__(
        self,
        root: Path,
        *,
        packages: int = 1,
        dram: bool = True,
        core: bool = True,
        psys: bool = False,
        max_energy_range_uj: int = INTEL_MAX_RANGE_UJ,
        start_uj: int = 1_000_000,
    ) -> None:
        self.root = root
        self.max_energy_range_uj = max_energy_range_uj
        root.mkdir(parents=True, exist_ok=True)
        (root / "intel-rapl").mkdir()
        (root / "intel-rapl" / "enabled").write_text("1\n")
        for n in range(packages):
            zone = self._zone(root / f"intel-rapl:{n}", f"package-{n}", start_uj)
            subzones = [name for name, wanted in (("core", core), ("uncore", core), ("dram", dram)) if wanted]
            for m, name in enumerate(subzones):
                sub = self._zone(zone / f"intel-rapl:{n}:{m}", name, start_uj)
                (root / sub.name).symlink_to(sub)
        if psys:
            self._zone(root / f"intel-rapl:{packages}", "psys", start_uj)

    def _zone(self, path: Path, name: str, start_uj: int) -> Path:
        path.mkdir()
        (path / "name").write_text(name + "\n")
        (path / "max_energy_range_uj").write_text(f"{self.max_energy_range_uj}\n")
        (path / "energy_uj").write_text(f"{start_uj}\n")
        (path / "energy_uj").chmod(0o400)  # root-only, as on kernels patched for CVE-2020-8694
        return path

    def zone(self, package: int = 0, sub: str | None = None) -> Path:
        """A package's zone, or its subzone of that name."""
        zone = self.root / f"intel-rapl:{package}"
        if sub is None:
            return zone
        return next(p for p in zone.iterdir() if p.is_dir() and (p / "name").read_text().strip() == sub)

    def energy_uj(self, zone: Path) -> int:
        return int((zone / "energy_uj").read_text())

    def set_uj(self, zone: Path, value_uj: int) -> None:
        (zone / "energy_uj").write_text(f"{value_uj}\n")

    def add_uj(self, zone: Path, delta_uj: int) -> None:
        """Energy used: the counter moves on and wraps to 0 at ``max_energy_range_uj``."""
        self.set_uj(zone, (self.energy_uj(zone) + delta_uj) % self.max_energy_range_uj)

    def deny(self, zone: Path) -> None:
        """Make the zone's counter unreadable to the agent, as energy_uj is to a non-root user."""
        (zone / "energy_uj").chmod(0)

    def remove(self, zone: Path) -> None:
        """The counter vanishes (a read fails with an I/O error)."""
        (zone / "energy_uj").unlink()


def run_unprivileged(monkeypatch: pytest.MonkeyPatch) -> None:
    """Read sysfs files as a user without root: one whose mode grants nobody reading is refused.

    The tests may run as root, who reads any file whatever its mode; a kernel refuses other users.
    """
    from wattwise_agent.backends import rapl

    original = rapl._read_text

    def read_text(path: Path) -> str:
        if path.exists() and not os.stat(path).st_mode & (stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH):
            raise PermissionError(13, "Permission denied", str(path))
        return original(path)

    monkeypatch.setattr(rapl, "_read_text", read_text)
