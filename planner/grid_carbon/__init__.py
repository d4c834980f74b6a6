"""Wattwise carbon library: from GPU energy to emissions, offsets and carbon-aware advice.

Pure Python (standard library only), no Django, no Celery, no network unless a live provider is
called. The Django layer stores what these functions return and passes stored rows back in.

Main entry points:

* :func:`compute_emissions` — per-UTC-hour emissions of a run, location-based and market-based.
* :class:`IntensityResolver` — intensity for (place, hour) through the fallback chain, with reasons.
* :func:`yearly_figure`, :func:`zone_yearly`, :func:`country_yearly`, :func:`google_region_yearly`,
  :func:`world_yearly`, :func:`locate`, :func:`cloud_regions` — embedded reference data.
* :mod:`importers` — parsers for Electricity Maps, UK Carbon Intensity, WattTime and CodeCarbon files.
* :mod:`providers` — live clients (Electricity Maps, WattTime, UK Carbon Intensity).
* :func:`quote_offsets` — the separate offsets ledger.
* :func:`advise` — where and when to run a planned job.

See ``docs/carbon.md`` for the method and the data licences.
"""

from planner.grid_carbon.advice import (
    Advice,
    Candidate,
    Constraints,
    Exclusion,
    Option,
    PlannedRun,
    advise,
    rebase,
    screen,
)
from planner.grid_carbon.emissions import EmissionsReport, HourEmissions, compute_emissions
from planner.grid_carbon.equivalents import Equivalent, car_km, equivalents
from planner.grid_carbon.hourly import HourlyLookup, HourlyMiss, HourlyTable
from planner.grid_carbon.market import (
    EmissionFactor,
    EnergyAttributeCertificate,
    MarketBasedResult,
    MarketInstruments,
    PowerPurchaseAgreement,
)
from planner.grid_carbon.offsets import (
    DEFAULT_PRICES,
    CreditPrice,
    CreditType,
    OffsetBalance,
    OffsetQuote,
    balance,
    quote_offsets,
)
from planner.grid_carbon.profiles import HourOfDayProfile, typical_profile
from planner.grid_carbon.records import Basis, Granularity, IntensityFigure, IntensityRecord, Signal
from planner.grid_carbon.reference import (
    all_yearly_figures,
    country_yearly,
    google_region_yearly,
    world_yearly,
    yearly_figure,
    zone_yearly,
)
from planner.grid_carbon.regions import CloudRegion, GridLocation, UnknownLocationError, cloud_regions, locate
from planner.grid_carbon.resolve import IntensityResolver, ResolvedIntensity

__all__ = [
    "DEFAULT_PRICES",
    "Advice",
    "Basis",
    "Candidate",
    "CloudRegion",
    "Constraints",
    "CreditPrice",
    "CreditType",
    "EmissionFactor",
    "EmissionsReport",
    "EnergyAttributeCertificate",
    "Equivalent",
    "Exclusion",
    "Granularity",
    "GridLocation",
    "HourEmissions",
    "HourOfDayProfile",
    "HourlyLookup",
    "HourlyMiss",
    "HourlyTable",
    "IntensityFigure",
    "IntensityRecord",
    "IntensityResolver",
    "MarketBasedResult",
    "MarketInstruments",
    "OffsetBalance",
    "OffsetQuote",
    "Option",
    "PlannedRun",
    "PowerPurchaseAgreement",
    "ResolvedIntensity",
    "Signal",
    "UnknownLocationError",
    "advise",
    "all_yearly_figures",
    "balance",
    "car_km",
    "cloud_regions",
    "compute_emissions",
    "country_yearly",
    "equivalents",
    "google_region_yearly",
    "locate",
    "quote_offsets",
    "rebase",
    "screen",
    "typical_profile",
    "world_yearly",
    "yearly_figure",
    "zone_yearly",
]
