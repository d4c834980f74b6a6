"""Market-based Scope 2 emissions, next to the location-based figure (GHG Protocol Scope 2 Guidance, 2015).

The GHG Protocol asks for **two** Scope 2 numbers whenever contractual instruments exist:

* **Location-based**: energy × the average intensity of the grid where it was consumed. Buying
  certificates cannot change it. This is what :mod:`emissions` computes hour by hour.
* **Market-based**: energy × the emission factors of the *contracts* the buyer holds, in this
  hierarchy:

  1. energy attribute certificates (EACs: Guarantees of Origin in Europe, RECs in North America,
     I-RECs elsewhere) — the kWh they cover count at the certificate's factor (0 g/kWh for renewables);
  2. direct contracts / PPAs — only if the certificates from the contract are retained by the buyer;
  3. a supplier-specific emission factor for the rest of the supplied electricity;
  4. the **residual mix** — the grid's intensity *after* removing everything claimed by certificates;
  5. only when no residual mix exists: the location-based grid average (flagged, because it counts
     others' claimed renewables a second time).

Quality criteria enforced here (the caller records the facts; the code refuses instruments that
fail them, and says why):

* the instrument is **retired** (cancelled) on the reporter's behalf — unretired certificates are
  excluded;
* its **vintage year** equals the year of the consumption it covers (matching is per calendar year);
* its **market boundary** (``EU``, ``EEA``, ``US``, or an ISO2 country) contains the consumption
  location;
* for PPAs, the **certificates are retained** (not sold on).

Coverage is matched per calendar year, not per hour (the Scope 2 convention); per-hour market figures
spread each year's coverage pro rata over its hours so that they add up to the total. Hourly matching
(24/7 carbon-free energy) is a different, stricter claim and is not what this computes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol

from planner.grid_carbon.records import check_intensity, check_pct
from planner.grid_carbon.regions import GridLocation
from planner.units import mwh_to_kwh

UncoveredMethod = Literal["none", "supplier", "residual_mix", "location_fallback"]


@dataclass(frozen=True, slots=True)
class EnergyAttributeCertificate:
    """A bundle of certificates (GO, REC, I-REC…) covering ``energy_kwh`` of one vintage year."""

    energy_kwh: float
    vintage_year: int
    market_boundary: str
    retired: bool
    kind: str = "EAC"
    emission_factor_g_per_kwh: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        check_intensity(self.energy_kwh, what="energy_kwh")
        check_intensity(self.emission_factor_g_per_kwh, what="emission_factor_g_per_kwh")

    @classmethod
    def from_mwh(
        cls,
        energy_mwh: float,
        *,
        vintage_year: int,
        market_boundary: str,
        retired: bool,
        kind: str = "EAC",
        emission_factor_g_per_kwh: float = 0.0,
        label: str = "",
    ) -> EnergyAttributeCertificate:
        """Certificates are usually counted in MWh (one GO = 1 MWh)."""
        return cls(
            mwh_to_kwh(energy_mwh),
            vintage_year,
            market_boundary,
            retired,
            kind,
            emission_factor_g_per_kwh,
            label,
        )


@dataclass(frozen=True, slots=True)
class PowerPurchaseAgreement:
    """A PPA covering either ``share_pct`` of the energy or a fixed ``energy_kwh`` in ``vintage_year``."""

    vintage_year: int
    market_boundary: str
    certificates_retained: bool
    share_pct: float | None = None
    energy_kwh: float | None = None
    emission_factor_g_per_kwh: float = 0.0
    label: str = ""

    def __post_init__(self) -> None:
        if (self.share_pct is None) == (self.energy_kwh is None):
            raise ValueError("a PPA covers either share_pct or energy_kwh, exactly one of them")
        check_pct(self.share_pct, what="share_pct")
        if self.energy_kwh is not None:
            check_intensity(self.energy_kwh, what="energy_kwh")
        check_intensity(self.emission_factor_g_per_kwh, what="emission_factor_g_per_kwh")


@dataclass(frozen=True, slots=True)
class EmissionFactor:
    """A supplier-specific or residual-mix factor, with where it comes from."""

    intensity_g_per_kwh: float
    source: str
    year: int | None = None

    def __post_init__(self) -> None:
        check_intensity(self.intensity_g_per_kwh)


@dataclass(frozen=True, slots=True)
class MarketInstruments:
    """Everything the market-based method may use for one site or organisation."""

    certificates: tuple[EnergyAttributeCertificate, ...] = ()
    ppas: tuple[PowerPurchaseAgreement, ...] = ()
    supplier_factor: EmissionFactor | None = None
    residual_mix: EmissionFactor | None = None


@dataclass(frozen=True, slots=True)
class MarketHour:
    """The market-based split of one hour's facility energy."""

    hour_utc: datetime
    covered_kwh: float
    uncovered_kwh: float
    uncovered_factor_g_per_kwh: float
    emissions_g: float


@dataclass(frozen=True, slots=True)
class MarketBasedResult:
    """Market-based emissions and how each kWh was accounted for."""

    emissions_g: float
    certificate_kwh: float
    ppa_kwh: float
    uncovered_kwh: float
    uncovered_method: UncoveredMethod
    uncovered_source: str
    unused_certificate_kwh: float
    hours: tuple[MarketHour, ...]
    excluded: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


class HourEnergy(Protocol):
    """What the market method needs from an hour (an :class:`emissions.HourEmissions` has it)."""

    @property
    def hour_utc(self) -> datetime: ...

    @property
    def facility_energy_kwh(self) -> float: ...

    @property
    def intensity_g_per_kwh(self) -> float: ...


def _eligible(
    vintage_year: int, boundary: str, years: set[int], groups: frozenset[str], what: str
) -> str | None:
    if boundary.upper() not in groups:
        shown = ", ".join(sorted(groups)) or "unknown"
        return f"{what}: market boundary {boundary} does not contain the consumption location ({shown})"
    if vintage_year not in years:
        return f"{what}: vintage {vintage_year} does not match the consumption year(s) {sorted(years)}"
    return None


def market_based(
    hours: Sequence[HourEnergy],
    instruments: MarketInstruments,
    location: GridLocation,
) -> MarketBasedResult:
    """Apply the Scope 2 market-based hierarchy to per-hour facility energy."""
    groups = frozenset(g.upper() for g in location.residency_groups)
    energy_by_year: dict[int, float] = defaultdict(float)
    for hour in hours:
        energy_by_year[hour.hour_utc.year] += hour.facility_energy_kwh
    years = set(energy_by_year)
    excluded: list[str] = []

    certs: dict[int, list[EnergyAttributeCertificate]] = defaultdict(list)
    for cert in instruments.certificates:
        what = f"{cert.kind} {cert.label or cert.vintage_year}".strip()
        problem = "" if cert.retired else f"{what}: not retired on your behalf"
        problem = problem or _eligible(cert.vintage_year, cert.market_boundary, years, groups, what) or ""
        if problem:
            excluded.append(problem)
        else:
            certs[cert.vintage_year].append(cert)
    ppas: dict[int, list[PowerPurchaseAgreement]] = defaultdict(list)
    for ppa in instruments.ppas:
        what = f"PPA {ppa.label or ppa.vintage_year}"
        problem = (
            ""
            if ppa.certificates_retained
            else f"{what}: its certificates were not retained, so its energy cannot be claimed"
        )
        problem = problem or _eligible(ppa.vintage_year, ppa.market_boundary, years, groups, what) or ""
        if problem:
            excluded.append(problem)
        else:
            ppas[ppa.vintage_year].append(ppa)

    covered_by_year: dict[int, float] = {}
    instrument_g_by_year: dict[int, float] = {}
    certificate_kwh = ppa_kwh = unused_kwh = 0.0
    for year, energy_kwh in energy_by_year.items():
        remaining = energy_kwh
        instrument_g = 0.0
        for cert in certs.get(year, []):
            used = min(cert.energy_kwh, remaining)
            remaining -= used
            certificate_kwh += used
            unused_kwh += cert.energy_kwh - used
            instrument_g += used * cert.emission_factor_g_per_kwh
        for ppa in ppas.get(year, []):
            amount = (
                ppa.energy_kwh if ppa.energy_kwh is not None else energy_kwh * (ppa.share_pct or 0.0) / 100.0
            )
            used = min(amount, remaining)
            remaining -= used
            ppa_kwh += used
            instrument_g += used * ppa.emission_factor_g_per_kwh
        covered_by_year[year] = energy_kwh - remaining
        instrument_g_by_year[year] = instrument_g

    method: UncoveredMethod
    notes: list[str] = []
    if instruments.supplier_factor is not None:
        method, factor, source = "supplier", instruments.supplier_factor, instruments.supplier_factor.source
    elif instruments.residual_mix is not None:
        method, factor, source = "residual_mix", instruments.residual_mix, instruments.residual_mix.source
    else:
        method, factor, source = "location_fallback", None, "location-based grid average"

    market_hours: list[MarketHour] = []
    total_g = uncovered_total = 0.0
    for hour in hours:
        year_energy = energy_by_year[hour.hour_utc.year]
        share = covered_by_year[hour.hour_utc.year] / year_energy if year_energy > 0 else 0.0
        covered = hour.facility_energy_kwh * share
        uncovered = hour.facility_energy_kwh - covered
        covered_total = covered_by_year[hour.hour_utc.year]
        covered_g = (
            instrument_g_by_year[hour.hour_utc.year] * (covered / covered_total) if covered_total > 0 else 0.0
        )
        uncovered_factor = factor.intensity_g_per_kwh if factor is not None else hour.intensity_g_per_kwh
        emissions_g = covered_g + uncovered * uncovered_factor
        total_g += emissions_g
        uncovered_total += uncovered
        market_hours.append(MarketHour(hour.hour_utc, covered, uncovered, uncovered_factor, emissions_g))

    if uncovered_total <= 1e-12:
        method, source = "none", "all energy covered by instruments"
    elif method == "location_fallback":
        notes.append(
            "no supplier factor or residual mix given: uncovered energy uses the location-based grid average "
            "(last step of the GHG Protocol hierarchy); this counts renewables claimed by others again, "
            "so the market-based figure is conservative"
        )
    if unused_kwh > 0:
        notes.append(f"{unused_kwh:.3f} kWh of certificates exceed this consumption and were not applied")
    return MarketBasedResult(
        emissions_g=total_g,
        certificate_kwh=certificate_kwh,
        ppa_kwh=ppa_kwh,
        uncovered_kwh=uncovered_total,
        uncovered_method=method,
        uncovered_source=source,
        unused_certificate_kwh=unused_kwh,
        hours=tuple(market_hours),
        excluded=tuple(excluded),
        notes=tuple(notes),
    )
