"""Under which licence each grid-intensity source's data is used: what a report's methodology names.

The shipped yearly data's licences are those of ``data/PROVENANCE.md`` (docs/carbon.md, section 3);
imported and live data are licensed to whoever downloaded them, so their terms are the provider's.
"""

from __future__ import annotations

from dataclasses import dataclass

from planner.grid_carbon.importers.electricitymaps_csv import SOURCE as SOURCE_EM_CSV
from planner.grid_carbon.importers.electricitymaps_json import SOURCE as SOURCE_EM_API
from planner.grid_carbon.importers.uk_carbon_intensity import SOURCE as SOURCE_UK
from planner.grid_carbon.importers.watttime import SOURCE as SOURCE_WATTTIME
from planner.grid_carbon.reference import SOURCE_EM_YEARLY, SOURCE_EMBER, SOURCE_GOOGLE, SOURCE_OWID


@dataclass(frozen=True, slots=True)
class SourceLicence:
    source: str
    licence: str
    attribution: str


_BY_PREFIX: tuple[tuple[str, str, str], ...] = (
    (SOURCE_EM_YEARLY, "ODbL 1.0 (shipped, via co2.js)", "Electricity Maps"),
    (SOURCE_EMBER, "CC BY-SA 4.0 (shipped, via co2.js)", "Ember and co2.js"),
    (SOURCE_OWID, "CC BY 4.0 (shipped, via CodeCarbon, MIT)", "Our World in Data"),
    (SOURCE_GOOGLE, "Apache-2.0 (shipped)", "Google Cloud region-carbon-info"),
    (SOURCE_EM_CSV, "Electricity Maps data licence of the downloaded file (free datasets: ODbL 1.0)",
     "Electricity Maps"),
    (SOURCE_EM_API, "Electricity Maps API terms of the account that fetched it", "Electricity Maps"),
    (SOURCE_UK, "CC BY 4.0 (NESO Carbon Intensity API)", "National Energy System Operator"),
    (SOURCE_WATTTIME, "WattTime terms of the account that fetched it", "WattTime"),
)

UNKNOWN_LICENCE = "not known to Wattwise: imported data, under the terms agreed with its provider"


def licence_of(source: str) -> SourceLicence:
    """The licence of a stored intensity ``source`` (e.g. an hour's ``source``), by its known prefix."""
    for prefix, licence, attribution in _BY_PREFIX:
        if source.startswith(prefix):
            return SourceLicence(source, licence, attribution)
    return SourceLicence(source, UNKNOWN_LICENCE, source)
