"""Embedded reference data: look-ups by zone, country and cloud region, offline, with provenance."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from planner.grid_carbon import (
    all_yearly_figures,
    cloud_regions,
    country_yearly,
    datasets,
    google_region_yearly,
    locate,
    world_yearly,
    yearly_figure,
    zone_yearly,
)
from planner.grid_carbon.regions import UnknownLocationError, residency_groups

DATA = Path(datasets.__file__).parent / "data"


def test_zone_figure_names_source_year_basis_and_granularity() -> None:
    figure = zone_yearly("SE-SE3", 2024)
    assert figure is not None
    assert figure.intensity_g_per_kwh == 21.0
    assert figure.renewable_pct == 60.0 and figure.cfe_pct == 100.0
    assert figure.source.startswith("Electricity Maps yearly")
    assert (figure.year, figure.basis, figure.granularity, figure.mix) == (
        2024,
        "lifecycle",
        "year",
        "consumption",
    )


def test_zone_years_outside_the_data_are_substituted_and_explained() -> None:
    late = zone_yearly("DE", 2030)
    early = zone_yearly("DE", 2019)
    assert late is not None and late.year == 2025 and "newest" in late.note
    assert early is not None and early.year == 2021 and "earliest" in early.note
    newest = zone_yearly("DE")
    assert newest is not None and newest.year == 2025 and newest.note == ""


def test_country_lookup_accepts_iso2_and_iso3() -> None:
    by_iso3 = country_yearly("FRA")
    by_iso2 = country_yearly("FR")
    assert by_iso3 == by_iso2
    assert by_iso3 is not None
    assert by_iso3.intensity_g_per_kwh == 44.18  # Ember 2024 via co2.js average-intensities.json
    assert by_iso3.source.startswith("Ember")
    assert by_iso3.level == "country" and by_iso3.mix == "production"


def test_world_average_is_embers() -> None:
    world = world_yearly()
    assert (world.intensity_g_per_kwh, world.year, world.level) == (472.94, 2024, "world")


@pytest.mark.parametrize(
    ("where", "zone", "country"),
    [
        ("gcp:europe-west1", "BE", "BE"),
        ("aws:eu-north-1", "SE-SE3", "SE"),
        ("azure:swedencentral", "SE-SE3", "SE"),
        ("aws:us-east-1", "US-MIDA-PJM", "US"),
        ("DEU", "DE", "DE"),
        ("de", "DE", "DE"),
        ("US-TEX-ERCO", "US-TEX-ERCO", "US"),
    ],
)
def test_locate_understands_regions_zones_and_country_codes(where: str, zone: str, country: str) -> None:
    location = locate(where)
    assert (location.zone, location.country_iso2) == (zone, country)


def test_region_lookup_returns_the_zone_figure_and_google_keeps_its_own() -> None:
    figure = yearly_figure("gcp:us-central1", 2024)
    assert (figure.key, figure.level) == ("US-MIDW-MISO", "zone")
    google = google_region_yearly("gcp:us-central1", 2024)
    assert google is not None
    assert google.intensity_g_per_kwh == 412.72 and google.cfe_pct == pytest.approx(87.0)
    assert google.basis == "direct"  # 2021+ files: "average operational gross emissions"
    old = google_region_yearly("us-central1", 2019)
    assert old is not None and old.basis == "lifecycle"  # 2019 header: "Lifecycle grid carbon intensity"


def test_all_figures_lists_every_source_for_methodology_comparison() -> None:
    sources = [f.source.split(" (")[0] for f in all_yearly_figures("gcp:europe-west3", 2024)]
    assert sources == [
        "Electricity Maps yearly",
        "Google Cloud region-carbon-info",
        "Ember yearly",
        "Our World in Data",
        "Ember yearly",
    ]


def test_unknown_regions_and_providers_are_rejected() -> None:
    with pytest.raises(UnknownLocationError, match="unknown cloud region"):
        locate("aws:mars-north-1")
    with pytest.raises(UnknownLocationError, match="unknown cloud provider"):
        locate("ibm:eu-de")


def test_catalogue_covers_every_google_region_and_maps_only_to_known_zones() -> None:
    regions = cloud_regions()
    google = {code for year in datasets.google_regions().values() for code in year}
    assert {f"gcp:{code}" for code in google} <= set(regions)
    known_zones = set(datasets.electricity_maps_yearly()[2025])
    for region in regions.values():
        assert region.zone in known_zones, region.region_id
        assert region.mapping_source, region.region_id
    assert sum(r.provider == "aws" for r in regions.values()) >= 20
    assert sum(r.provider == "azure" for r in regions.values()) >= 25


def test_residency_groups_know_eu_and_eea() -> None:
    assert residency_groups("DE") == {"DE", "EU", "EEA"}
    assert residency_groups("NO") == {"NO", "EEA"}
    assert residency_groups("GB") == {"GB"}


def test_lookups_work_with_the_network_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the reference data must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    for loader in (datasets.electricity_maps_yearly, datasets.ember_countries, datasets.google_regions):
        loader.cache_clear()
    assert yearly_figure("aws:eu-west-1").key == "IE"


def test_data_is_loaded_lazily_not_at_import() -> None:
    script = (
        "import planner.grid_carbon as c\n"
        "from planner.grid_carbon import datasets as d\n"
        "assert d.electricity_maps_yearly.cache_info().currsize == 0\n"
        "c.zone_yearly('DE')\n"
        "assert d.electricity_maps_yearly.cache_info().currsize == 1\n"
        "c.zone_yearly('FR')\n"
        "assert d.electricity_maps_yearly.cache_info().hits >= 1\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True)


def test_shipped_files_match_their_checksums_and_are_all_listed_in_provenance() -> None:
    sums = {}
    for line in (DATA / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split(maxsplit=1)
        sums[name.removeprefix("./")] = digest
    shipped = {
        str(p.relative_to(DATA))
        for p in DATA.rglob("*")
        if p.is_file() and p.name not in {"SHA256SUMS", "PROVENANCE.md"}
    }
    assert shipped == set(sums)
    for name, digest in sums.items():
        assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == digest, name
    provenance = (DATA / "PROVENANCE.md").read_text()
    for name in shipped:
        assert f"`{name}`" in provenance, f"{name} is not listed in PROVENANCE.md"


def test_auxiliary_tables_parse_with_their_documented_values() -> None:
    factors = datasets.per_source_factors_g_per_kwh()
    assert (factors["world_average"], factors["coal"], factors["wind"]) == (475.0, 995.0, 26.0)
    assert datasets.operating_margins_g_per_kwh()["DEU"] == 650.0
    assert datasets.country_codes()["SE"].iso3 == "SWE"
