"""CPU package and DRAM energy from Linux RAPL, through the powercap sysfs tree, read beside the GPUs.

Under ``/sys/class/powercap`` each CPU package is a zone ``intel-rapl:N`` (``name`` is ``package-N``) with
its subzones ``intel-rapl:N:M`` (``name`` is ``core``, ``uncore`` or ``dram``); AMD processors use the same
interface on recent kernels. Each zone has ``energy_uj``, a counter in µJ that wraps to 0 at
``max_energy_range_uj`` (about 2^32 µJ = 4.3 kJ on many CPUs: under half a minute at 200 W).

What is read: every package zone, as component ``cpu``, and every ``dram`` subzone, as component ``dram``
(DRAM is outside the package). ``core`` and ``uncore`` lie inside the package and ``psys`` (the whole
platform) contains it: reading them too would count the same energy twice, so they are skipped.

The counter is unwrapped here, at every reading, into a count that only goes up (a step back is one
wrap: the step forwards is ``after + max_energy_range_uj - before``), kept whole in µJ and sent as
``floor`` of it in mJ, so no remainder is ever lost and a window's counter difference is exact to under
1 mJ. Two wraps between readings cannot be told from one: the agent samples at several Hz, far faster
than any package wraps. RAPL has no instantaneous power: ``power_mw`` is the mean over the interval
before each reading (µJ per ms is mW; ``power_field: "average"``). Clock, utilisation and temperature
are sent as 0.

Reading ``energy_uj`` needs root on kernels patched for CVE-2020-8694 (RAPL as a side channel).
:func:`open_rapl` says once, in one log line, when there is no RAPL or it cannot be read, and how to fix
that; the agent then streams the GPUs alone.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from wattwise_agent.backends.base import ENERGY_COUNTER, POWER_AVERAGE, GpuBackend, GpuInfo, Reading
from wattwise_agent.wire import COMPONENT_CPU, COMPONENT_DRAM

log = logging.getLogger(__name__)

POWERCAP_ROOT = Path("/sys/class/powercap")
_ZONE = re.compile(r"^intel-rapl:(\d+)$")
_SUBZONE = re.compile(r"^intel-rapl:(\d+):(\d+)$")
UJ_PER_MJ = 1000
_PERMISSION_FIX = (
    "sudo chmod a+r {root}/intel-rapl:*/energy_uj {root}/intel-rapl:*/intel-rapl:*/energy_uj (until the next "
    "boot; a udev rule or tmpfiles.d entry keeps it), or run the agent as root"
)


class RaplUnavailable(RuntimeError):
    """No RAPL zone can be read; the text says why and what to do."""


@dataclass(frozen=True)
class RaplDomain:
    """One RAPL zone the agent reads: a package (component ``cpu``) or a package's DRAM (``dram``)."""

    path: Path  # the zone's directory
    zone: str  # its directory name, intel-rapl:N or intel-rapl:N:M
    label: str  # its ``name`` file: package-0, dram
    package: int  # N
    component: str
    max_energy_range_uj: int

    def uuid(self, node: str) -> str:
        package = self.label if self.component == COMPONENT_CPU else f"package-{self.package}"
        return f"RAPL-{node}-{package}" + ("-dram" if self.component == COMPONENT_DRAM else "")

    def info(self, node: str) -> GpuInfo:
        what = "CPU" if self.component == COMPONENT_CPU else "DRAM"
        return GpuInfo(
            index=self.package,
            uuid=self.uuid(node),
            name=f"{what} package-{self.package} (RAPL)",
            energy_source=ENERGY_COUNTER,
            power_field=POWER_AVERAGE,
            architecture="RAPL",
            component=self.component,
        )


def _read_text(path: Path) -> str:
    return path.read_text().strip()


def _domain(path: Path, package: int, zone: str, component: str) -> RaplDomain | None:
    try:
        max_range = int(_read_text(path / "max_energy_range_uj"))
        label = _read_text(path / "name")
    except (OSError, ValueError):
        return None
    if max_range <= 0:
        return None
    return RaplDomain(path, zone, label, package, component, max_range)


def _entries(directory: Path, pattern: re.Pattern[str]) -> list[tuple[int, Path]]:
    """The entries of ``directory`` whose name matches ``pattern``, by their last number; none if unreadable."""
    try:
        names = [entry for entry in directory.iterdir() if pattern.match(entry.name)]
    except OSError:
        return []
    return sorted((int(entry.name.rpartition(":")[2]), entry) for entry in names)


def find_domains(root: Path = POWERCAP_ROOT) -> list[RaplDomain]:
    """The package zones under ``root`` and their DRAM subzones, packages in order, each DRAM after its package."""
    found: list[RaplDomain] = []
    zones = _entries(root, _ZONE)
    for number, zone in zones:
        try:
            label = _read_text(zone / "name")
        except OSError:
            continue
        if label.startswith("package"):
            package = int(label.partition("-")[2]) if label.partition("-")[2].isdigit() else number
            domain = _domain(zone, package, zone.name, COMPONENT_CPU)
            if domain is None:
                continue
            found.append(domain)
            for _, sub in _entries(zone, _SUBZONE):
                try:
                    is_dram = _read_text(sub / "name") == "dram"
                except OSError:
                    continue
                dram = _domain(sub, package, sub.name, COMPONENT_DRAM) if is_dram else None
                if dram is not None:
                    found.append(dram)
        elif label == "dram":  # some platforms list DRAM as a zone of its own
            dram = _domain(zone, number, zone.name, COMPONENT_DRAM)
            if dram is not None:
                found.append(dram)
    return found


def unwrapped_step_uj(before_uj: int, after_uj: int, max_energy_range_uj: int) -> int:
    """Energy between two readings of a RAPL counter, in µJ: a step back is one wrap at ``max_energy_range_uj``."""
    if after_uj >= before_uj:
        return after_uj - before_uj
    return after_uj + max_energy_range_uj - before_uj


class _Counter:
    """One zone's counter made monotonic: the last raw value, and the total in whole µJ."""

    def __init__(self, raw_uj: int, at_s: float) -> None:
        self.raw_uj = raw_uj
        self.total_uj = raw_uj
        self.last_t_ms: int | None = None
        self.opened_s = at_s


class RaplBackend(GpuBackend):
    """The node's RAPL packages and DRAM as devices beside the GPUs (components ``cpu`` and ``dram``).

    ``root`` is the powercap directory (tests pass a fake tree). Raises :class:`RaplUnavailable` when no
    zone can be read; zones that fail on a later reading are skipped for that reading (the next counter
    difference covers the gap) and said once.
    """

    name = "rapl"
    simulated = False

    def __init__(self, node: str, *, root: Path | str = POWERCAP_ROOT) -> None:
        self.root = Path(root)
        domains = find_domains(self.root)
        if not domains:
            raise RaplUnavailable(
                f"no RAPL energy counters under {self.root} (no intel-rapl package zone: not an Intel or recent "
                "AMD CPU, a virtual machine, or the intel_rapl_common module is not loaded)"
            )
        readable: list[RaplDomain] = []
        self._counters: dict[str, _Counter] = {}
        denied: list[Path] = []
        problems: list[str] = []
        now_s = time.monotonic()
        for domain in domains:
            try:
                raw = int(_read_text(domain.path / "energy_uj"))
            except PermissionError:
                denied.append(domain.path / "energy_uj")
                continue
            except (OSError, ValueError) as exc:
                problems.append(f"{domain.path / 'energy_uj'}: {exc}")
                continue
            readable.append(domain)
            self._counters[domain.zone] = _Counter(raw, now_s)
        if not readable:
            if denied:
                raise RaplUnavailable(
                    f"RAPL energy counters are not readable ({denied[0]}: permission denied; root-only on kernels "
                    f"patched for CVE-2020-8694). To measure CPU and DRAM energy: {_PERMISSION_FIX.format(root=self.root)}"
                )
            raise RaplUnavailable(f"RAPL energy counters cannot be read ({'; '.join(problems)})")
        if denied or problems:
            skipped = [str(p) for p in denied] + problems
            log.warning("RAPL: %d zone(s) skipped, not readable: %s", len(skipped), "; ".join(skipped))
        self.domains = readable
        self._gpus = [domain.info(node) for domain in readable]
        self._failures: set[tuple[str, str]] = set()

    @property
    def gpus(self) -> Sequence[GpuInfo]:
        return self._gpus

    def read(self, t_ms: int) -> list[Reading | None]:
        return [self._read_one(domain, gpu, t_ms) for domain, gpu in zip(self.domains, self._gpus)]

    def _read_one(self, domain: RaplDomain, gpu: GpuInfo, t_ms: int) -> Reading | None:
        counter = self._counters[domain.zone]
        try:
            raw = int(_read_text(domain.path / "energy_uj"))
        except (OSError, ValueError) as exc:
            self._warn_once(gpu.uuid, f"reading skipped ({exc})")
            return None
        step_uj = unwrapped_step_uj(counter.raw_uj, raw, domain.max_energy_range_uj)
        # The first reading's interval runs from when the zone was opened, on the monotonic clock: t_ms
        # may be a virtual clock's.
        if counter.last_t_ms is None:
            interval_ms = (time.monotonic() - counter.opened_s) * 1000
        else:
            interval_ms = t_ms - counter.last_t_ms
        counter.raw_uj = raw
        counter.total_uj += step_uj
        counter.last_t_ms = t_ms
        return Reading(
            energy_mj=counter.total_uj // UJ_PER_MJ,
            power_mw=round(step_uj / interval_ms) if interval_ms > 0 else 0,  # µJ per ms is mW
            sm_clock_mhz=0,
            util_pct=0,
            temp_c=0,
        )

    def _warn_once(self, uuid: str, message: str) -> None:
        if (uuid, message) not in self._failures:
            self._failures.add((uuid, message))
            log.warning("RAPL %s: %s", uuid, message)


def open_rapl(node: str, *, root: Path | str = POWERCAP_ROOT) -> RaplBackend | None:
    """The node's RAPL zones, or None after one log line saying why there are none and how to fix it."""
    try:
        return RaplBackend(node, root=root)
    except RaplUnavailable as exc:
        log.warning("%s: CPU and DRAM energy not measured, streaming the GPUs only (--no-cpu or cpu=False "
                    "silences this)", exc)
        return None


def node_energy(node: str, *, cpu: bool | None, simulated: bool, root: Path | str | None = None) -> RaplBackend | None:
    """What the agent reads beside the GPUs: the node's RAPL zones, or None.

    ``cpu`` None (the default) reads them beside real GPUs and not beside the simulator, whose runs must
    stay wholly simulated; True reads them in either case (a fake tree for tests and demos: ``root``);
    False never.
    """
    if cpu is False or (cpu is None and simulated):
        return None
    return open_rapl(node, root=POWERCAP_ROOT if root is None else root)
