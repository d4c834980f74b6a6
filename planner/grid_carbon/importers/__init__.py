"""Pure parsers for grid-intensity and emissions files: bytes in, normalised records out.

All-or-nothing: each parser returns a complete list or raises :class:`CarbonImportError` naming the
line or JSON path, the field and the problem. Nothing is read from disk or network here.
"""

from planner.grid_carbon.importers.codecarbon import CodeCarbonRun, parse_codecarbon_csv
from planner.grid_carbon.importers.detect import ImportFormat, detect_format, import_intensity_file
from planner.grid_carbon.importers.electricitymaps_csv import parse_electricitymaps_csv
from planner.grid_carbon.importers.electricitymaps_json import parse_electricitymaps_json
from planner.grid_carbon.importers.errors import CarbonImportError
from planner.grid_carbon.importers.uk_carbon_intensity import parse_uk_carbon_intensity_json, region_zone
from planner.grid_carbon.importers.watttime import parse_watttime_json

__all__ = [
    "CarbonImportError",
    "CodeCarbonRun",
    "ImportFormat",
    "detect_format",
    "import_intensity_file",
    "parse_codecarbon_csv",
    "parse_electricitymaps_csv",
    "parse_electricitymaps_json",
    "parse_uk_carbon_intensity_json",
    "parse_watttime_json",
    "region_zone",
]
