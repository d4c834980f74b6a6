"""A project's contractual instruments (certificates, PPAs, supplier factor, residual mix), shared out
over its runs for the market-based figure.

Certificates and fixed-energy PPAs cover a project's consumption of a *year*, not one run's. Giving
each run the whole amount would count the same certificates once per run, so each run (and node) gets
them pro rata to its share of the project's facility energy in that year::

    allocated_kwh = certificate_kwh × node_facility_kwh[year] ÷ project_facility_kwh[year]

so per-run market figures add up to the project's. Share-based PPAs (``share_pct``) need no sharing.
The project's yearly energy is taken from the stored figures of its other runs at compute time; when a
run's energy changes, the others are marked stale so their shares follow.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

from django.db.models import Sum
from django.db.models.functions import ExtractYear

from planner.carbon.models import Certificate, PowerPurchase, ProjectCarbon, RunCarbonHour
from planner.grid_carbon import (
    EmissionFactor,
    EnergyAttributeCertificate,
    MarketInstruments,
    PowerPurchaseAgreement,
)


def project_instruments(project_id: int, settings: ProjectCarbon) -> MarketInstruments:
    """Everything the project holds, unshared."""
    certificates = tuple(
        EnergyAttributeCertificate(
            energy_kwh=c.energy_kwh,
            vintage_year=c.vintage_year,
            market_boundary=c.market_boundary,
            retired=c.retired,
            kind=c.kind,
            emission_factor_g_per_kwh=c.emission_factor_g_per_kwh,
            label=c.label,
        )
        for c in Certificate.objects.filter(project_id=project_id).order_by("pk")
    )
    ppas = tuple(
        PowerPurchaseAgreement(
            vintage_year=p.vintage_year,
            market_boundary=p.market_boundary,
            certificates_retained=p.certificates_retained,
            share_pct=p.share_pct,
            energy_kwh=p.energy_kwh if p.share_pct is None else None,
            emission_factor_g_per_kwh=p.emission_factor_g_per_kwh,
            label=p.label,
        )
        for p in PowerPurchase.objects.filter(project_id=project_id).order_by("pk")
    )
    supplier = (
        EmissionFactor(settings.supplier_factor_g_per_kwh, settings.supplier_factor_source or "supplier factor")
        if settings.supplier_factor_g_per_kwh is not None
        else None
    )
    residual = (
        EmissionFactor(settings.residual_mix_g_per_kwh, settings.residual_mix_source or "residual mix")
        if settings.residual_mix_g_per_kwh is not None
        else None
    )
    return MarketInstruments(certificates, ppas, supplier, residual)


def other_runs_facility_kwh_by_year(project_id: int, run_id: int) -> dict[int, float]:
    """Facility energy per calendar year of the project's other runs, from their stored figures."""
    rows = (
        RunCarbonHour.objects.filter(node_carbon__run_carbon__run__project_id=project_id)
        .exclude(node_carbon__run_carbon__run_id=run_id)
        .annotate(year_utc=ExtractYear("hour_utc"))
        .values("year_utc")
        .annotate(kwh=Sum("facility_energy_kwh"))
        .order_by()
    )
    return {int(r["year_utc"]): float(r["kwh"] or 0.0) for r in rows}


def shared(instruments: MarketInstruments, share_by_year: dict[int, float]) -> MarketInstruments:
    """The instruments scaled to one node's share of the project's yearly energy."""
    share = defaultdict(float, share_by_year)
    return replace(
        instruments,
        certificates=tuple(
            replace(c, energy_kwh=c.energy_kwh * share[c.vintage_year]) for c in instruments.certificates
        ),
        ppas=tuple(
            p if p.energy_kwh is None else replace(p, energy_kwh=p.energy_kwh * share[p.vintage_year])
            for p in instruments.ppas
        ),
    )
