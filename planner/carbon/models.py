"""The carbon side's data: grid-intensity rows, sites, per-run emissions, market instruments, offsets,
region preferences.

Intensity rows and imports have an owner: a project (its own data, for its runs alone) or none (shared
data for every project, managed by staff; live providers' rows are shared); everything else belongs to a
project. Per-run figures are stored with the provenance of every hour (source, year, basis, fallback
step and reason) so a figure shown today can be explained and reproduced later.
"""

from __future__ import annotations

from typing import TypeVar

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from dashboard.projects.models import Project, Visitor
from dashboard.telemetry.models import Node, Run, RunGpu
from planner.grid_carbon.offsets import CreditType as LibraryCreditType
from planner.units import J_PER_KWH

M = TypeVar("M", bound=models.Model)

PCT = [MinValueValidator(0.0), MaxValueValidator(100.0)]
NON_NEGATIVE = [MinValueValidator(0.0)]
PUE_RANGE = [MinValueValidator(1.0), MaxValueValidator(5.0)]


# The grid-carbon library's vocabulary, as stored (planner.grid_carbon.records and .resolve spell the same
# values as literal types; tests/planner/carbon/test_stored_vocabulary.py holds the two together).


class Basis(models.TextChoices):
    """What an emission factor counts: a kWh's whole life cycle, or only combustion."""

    LIFECYCLE = "lifecycle", "lifecycle"
    DIRECT = "direct", "direct"


class Granularity(models.TextChoices):
    """The period one intensity value covers."""

    HOUR = "hour", "hour"
    DAY = "day", "day"
    MONTH = "month", "month"
    YEAR = "year", "year"


class Signal(models.TextChoices):
    """Average intensity (for accounting) or marginal (for deciding when to run)."""

    AVERAGE = "average", "average"
    MARGINAL = "marginal", "marginal"


class FallbackStep(models.TextChoices):
    """Which step of the fallback chain gave an hour its intensity (only ``hourly`` is no fallback)."""

    HOURLY = "hourly", "the zone's hourly value"
    IMPORTED_PERIOD = "imported_period", "an imported day, month or year"
    ZONE_YEARLY = "zone_yearly", "the zone's yearly average"
    COUNTRY_YEARLY = "country_yearly", "the country's yearly average"
    WORLD = "world", "the world average"


class CreditType(models.TextChoices):
    """What a carbon credit represents (the offsets library's credit types)."""

    AVOIDANCE = LibraryCreditType.AVOIDANCE.value, "avoidance"
    NATURE_REMOVAL = LibraryCreditType.NATURE_REMOVAL.value, "nature-based removal"
    DURABLE_REMOVAL = LibraryCreditType.DURABLE_REMOVAL.value, "durable removal"
    CUSTOM = LibraryCreditType.CUSTOM.value, "custom"


# --- grid intensity --------------------------------------------------------------------------------


class OwnedQuerySet(models.QuerySet[M]):
    """Intensity data is shared (no project) or a project's own: who sees and who uses which."""

    def visible_to(self, user: Visitor | None) -> OwnedQuerySet[M]:
        """Shared rows and those of the projects ``user`` may see (the projects app's access rule)."""
        return self.filter(Q(project__isnull=True) | Q(project__in=Project.objects.for_user(user)))

    def for_project(self, project_id: int | None) -> OwnedQuerySet[M]:
        """What a project's figures may use: shared rows and its own (only shared ones for ``None``)."""
        if project_id is None:
            return self.filter(project__isnull=True)
        return self.filter(Q(project__isnull=True) | Q(project_id=project_id))

    def owned_by(self, project_id: int | None) -> OwnedQuerySet[M]:
        """Exactly one owner's rows: a project's own, or the shared ones for ``None``."""
        return self.filter(project__isnull=True) if project_id is None else self.filter(project_id=project_id)


class IntensityImport(models.Model):
    """One imported file (or CodeCarbon file) that changed something; re-imports that change nothing
    leave no row, so the list reads as the history of the data."""

    class Via(models.TextChoices):
        UPLOAD = "upload", "upload"
        COMMAND = "command", "command"

    filename = models.CharField(max_length=255)
    format = models.CharField(max_length=40)
    sha256 = models.CharField(max_length=64)
    zones = models.CharField(max_length=500, blank=True)
    first_utc = models.DateTimeField(null=True, blank=True)
    last_utc = models.DateTimeField(null=True, blank=True)
    rows_created = models.IntegerField(default=0)
    rows_updated = models.IntegerField(default=0)
    rows_unchanged = models.IntegerField(default=0)
    imported_at = models.DateTimeField(auto_now_add=True)
    imported_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=16, choices=Via.choices, default=Via.UPLOAD)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="intensity_imports",
        help_text="whose data this is; empty: shared by every project (staff only)",
    )

    objects = OwnedQuerySet["IntensityImport"].as_manager()

    class Meta:
        ordering = ["-imported_at"]

    def __str__(self) -> str:
        return f"{self.filename} ({self.format})"


class IntensityRow(models.Model):
    """One grid-intensity value for a zone and period (an ``IntensityRecord`` of the core library)."""

    class Origin(models.TextChoices):
        FILE = "file", "imported file"
        LIVE = "live", "live provider"

    zone = models.CharField(max_length=64)
    start_utc = models.DateTimeField()
    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    basis = models.CharField(max_length=16, choices=Basis.choices)
    signal = models.CharField(max_length=16, choices=Signal.choices, default=Signal.AVERAGE)
    source = models.CharField(max_length=100)
    is_forecast = models.BooleanField(default=False)
    intensity_g_per_kwh = models.FloatField()
    renewable_pct = models.FloatField(null=True, blank=True)
    cfe_pct = models.FloatField(null=True, blank=True)
    is_estimated = models.BooleanField(default=False)
    origin = models.CharField(max_length=16, choices=Origin.choices, default=Origin.FILE)
    imported = models.ForeignKey(
        IntensityImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="rows"
    )
    updated_at = models.DateTimeField(auto_now=True)
    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="intensity_rows",
        help_text="the project whose runs use this row; empty: shared by every project",
    )

    objects = OwnedQuerySet["IntensityRow"].as_manager()

    class Meta:
        # Two partial constraints, because NULLs are distinct in a unique constraint: one set of shared
        # rows, and one per project.
        constraints = [
            models.UniqueConstraint(
                fields=["zone", "granularity", "start_utc", "basis", "signal", "source", "is_forecast"],
                condition=Q(project__isnull=True), name="intensity_row_unique_shared",
            ),
            models.UniqueConstraint(
                fields=["project", "zone", "granularity", "start_utc", "basis", "signal", "source", "is_forecast"],
                condition=Q(project__isnull=False), name="intensity_row_unique_per_project",
            ),
        ]
        indexes = [models.Index(fields=["zone", "start_utc"], name="intensity_zone_time")]


class ImportJob(models.Model):
    """An uploaded file being imported by a worker (``carbon.import_job``): where it is, and how far.

    The file waits under ``WATTWISE_IMPORT_DIR`` until the job ends; ``bytes_read`` of ``size_bytes`` and
    ``rows_read`` are written as the worker streams it, so a page can show progress.
    """

    class State(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "importing"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    project = models.ForeignKey(
        Project, null=True, blank=True, on_delete=models.CASCADE, related_name="+",
        help_text="whose data the file is; empty: shared by every project",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    via = models.CharField(max_length=16, choices=IntensityImport.Via.choices, default=IntensityImport.Via.UPLOAD)
    filename = models.CharField(max_length=255)
    path = models.CharField(max_length=500, help_text="the stored upload, removed when the job ends")
    size_bytes = models.BigIntegerField()
    zone = models.CharField(max_length=100, blank=True)
    basis = models.CharField(max_length=16, choices=Basis.choices, default=Basis.LIFECYCLE)
    timezone = models.CharField(max_length=64, default="UTC")
    state = models.CharField(max_length=8, choices=State.choices, default=State.QUEUED)
    bytes_read = models.BigIntegerField(default=0)
    rows_read = models.BigIntegerField(default=0)
    message = models.TextField(blank=True, help_text="what the import did, or why nothing was imported")
    result = models.ForeignKey(IntensityImport, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]

    @property
    def finished(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    @property
    def progress_fraction(self) -> float:
        if self.state == self.State.DONE:
            return 1.0
        return min(1.0, self.bytes_read / self.size_bytes) if self.size_bytes > 0 else 0.0


class ProviderStatus(models.Model):
    """The last poll of a live provider: shown on the data page so a silent fallback is visible."""

    provider = models.CharField(max_length=64, unique=True)
    enabled = models.BooleanField(default=False)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    last_error_at = models.DateTimeField(null=True, blank=True)
    records_stored = models.IntegerField(default=0)

    class Meta:
        ordering = ["provider"]

    @property
    def how_to_enable(self) -> str:
        """What turns this provider on, for the pages that show it off (the settings are in .env.example)."""
        return HOW_TO_ENABLE.get(self.provider, "not configured")


# The UK provider is a free public API: it needs no key, only to be switched on.
HOW_TO_ENABLE = {
    "Electricity Maps": "set WATTWISE_ELECTRICITYMAPS_TOKEN to an API token",
    "WattTime": "set WATTWISE_WATTTIME_USERNAME and WATTWISE_WATTTIME_PASSWORD",
    "UK Carbon Intensity": "no key needed: set WATTWISE_UK_CARBON_INTENSITY=1 to poll it",
}


# --- where nodes run ----------------------------------------------------------------------------------


class Site(models.Model):
    """A place a project's nodes run: a grid zone, cloud region or country, and its PUE."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="carbon_sites")
    name = models.CharField(max_length=100)
    where = models.CharField(
        max_length=100, help_text="grid zone (SE-SE3), cloud region (aws:eu-north-1) or country code (DE)"
    )
    pue = models.FloatField(default=1.0, validators=PUE_RANGE, help_text="facility energy ÷ IT energy")
    note = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="site_unique_per_project")]

    def __str__(self) -> str:
        return f"{self.name} ({self.where}, PUE {self.pue:g})"


class NodeSite(models.Model):
    """An explicit assignment of a node to a site: beats whatever the agent said."""

    node = models.OneToOneField(Node, on_delete=models.CASCADE, related_name="carbon_site")
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="assignments")
    assigned_at = models.DateTimeField(auto_now=True)

    def clean(self) -> None:
        if self.site_id and self.node_id and self.site.project_id != self.node.project_id:
            raise ValidationError("a node can only be assigned to a site of its own project")


class ProjectCarbon(models.Model):
    """A project's accounting defaults and its market-based factors."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="carbon")
    default_where = models.CharField(
        max_length=100, blank=True, help_text="zone or region for nodes with no site and no agent flag"
    )
    default_pue = models.FloatField(default=1.0, validators=PUE_RANGE)
    supplier_factor_g_per_kwh = models.FloatField(null=True, blank=True, validators=NON_NEGATIVE)
    supplier_factor_source = models.CharField(max_length=200, blank=True)
    residual_mix_g_per_kwh = models.FloatField(null=True, blank=True, validators=NON_NEGATIVE)
    residual_mix_source = models.CharField(max_length=200, blank=True)
    updated_at = models.DateTimeField(auto_now=True)


class Certificate(models.Model):
    """Energy attribute certificates (GO, REC, I-REC) held for a project's consumption."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="carbon_certificates")
    kind = models.CharField(max_length=16, default="GO")
    label = models.CharField(max_length=100, blank=True)
    energy_kwh = models.FloatField(validators=NON_NEGATIVE)
    vintage_year = models.IntegerField()
    market_boundary = models.CharField(max_length=8, help_text="EU, EEA or an ISO2 country code")
    retired = models.BooleanField(default=True, help_text="cancelled on the project's behalf")
    emission_factor_g_per_kwh = models.FloatField(default=0.0, validators=NON_NEGATIVE)


class PowerPurchase(models.Model):
    """A PPA: a share of the energy or a fixed amount, claimable only if its certificates are kept."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="carbon_ppas")
    label = models.CharField(max_length=100, blank=True)
    vintage_year = models.IntegerField()
    market_boundary = models.CharField(max_length=8)
    certificates_retained = models.BooleanField(default=True)
    share_pct = models.FloatField(null=True, blank=True, validators=PCT)
    energy_kwh = models.FloatField(null=True, blank=True, validators=NON_NEGATIVE)
    emission_factor_g_per_kwh = models.FloatField(default=0.0, validators=NON_NEGATIVE)


# --- per-run emissions --------------------------------------------------------------------------------


class RunCarbon(models.Model):
    """A run's stored emissions: totals here, per node, per node-hour and per GPU below."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, related_name="carbon")
    computed_at = models.DateTimeField()
    # Set when something the figures depend on changed (intensity import, site, instruments).
    stale = models.BooleanField(default=False)
    energy_j = models.FloatField()
    facility_energy_kwh = models.FloatField()
    emissions_g = models.FloatField()
    market_emissions_g = models.FloatField()
    hours = models.IntegerField()  # node-hours
    fallback_hours = models.IntegerField()  # node-hours whose intensity was not the zone's hourly value
    mixed_basis = models.BooleanField(default=False)
    notes = models.JSONField(default=list)

    @property
    def pue(self) -> float:
        """The run's effective PUE: facility energy over GPU energy (nodes may differ)."""
        return self.facility_energy_kwh * J_PER_KWH / self.energy_j if self.energy_j else 1.0


class RunNodeCarbon(models.Model):
    """One node's part of a run's emissions, with where it was placed and why."""

    class LocatedBy(models.TextChoices):
        """How the node's place was known (planner.carbon.placing's precedence)."""

        SITE = "site", "site assignment"
        AGENT_ZONE = "agent_zone", "agent --zone"
        AGENT_REGION = "agent_region", "agent --region"
        PROJECT_DEFAULT = "project_default", "project default"
        WORLD = "world", "world average (no location known)"

    run_carbon = models.ForeignKey(RunCarbon, on_delete=models.CASCADE, related_name="nodes")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="+")
    where = models.CharField(max_length=100)
    zone = models.CharField(max_length=64, blank=True)
    site_name = models.CharField(max_length=100, blank=True)
    located_by = models.CharField(max_length=16, choices=LocatedBy.choices)
    located_note = models.TextField(blank=True)
    pue = models.FloatField()
    energy_j = models.FloatField()
    facility_energy_kwh = models.FloatField()
    emissions_g = models.FloatField()
    market_emissions_g = models.FloatField()
    market = models.JSONField(default=dict)

    class Meta:
        ordering = ["node__name"]
        constraints = [models.UniqueConstraint(fields=["run_carbon", "node"], name="run_node_carbon_unique")]


class RunCarbonHour(models.Model):
    """One node's UTC hour: energy, the intensity used and its provenance."""

    node_carbon = models.ForeignKey(RunNodeCarbon, on_delete=models.CASCADE, related_name="hours")
    hour_utc = models.DateTimeField()
    energy_j = models.FloatField()
    pue = models.FloatField()
    facility_energy_kwh = models.FloatField()
    intensity_g_per_kwh = models.FloatField()
    emissions_g = models.FloatField()
    market_emissions_g = models.FloatField()
    source = models.CharField(max_length=200)
    basis = models.CharField(max_length=16, choices=Basis.choices)
    year = models.IntegerField()
    step = models.CharField(max_length=16, choices=FallbackStep.choices)
    reason = models.TextField()

    class Meta:
        ordering = ["hour_utc"]
        constraints = [models.UniqueConstraint(fields=["node_carbon", "hour_utc"], name="run_carbon_hour_unique")]

    @property
    def fallback(self) -> bool:
        """The hour's intensity is not the zone's own hourly value."""
        return self.step != FallbackStep.HOURLY


class RunGpuCarbon(models.Model):
    """One GPU's emissions: its hourly energy at its node's PUE and hourly intensities."""

    run_carbon = models.ForeignKey(RunCarbon, on_delete=models.CASCADE, related_name="gpus")
    run_gpu = models.ForeignKey(RunGpu, on_delete=models.CASCADE, related_name="+")
    energy_j = models.FloatField()
    emissions_g = models.FloatField()
    market_emissions_g = models.FloatField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["run_carbon", "run_gpu"], name="run_gpu_carbon_unique")]


class RecomputeClaim(models.Model):
    """When stored samples of a run last queued a recompute: the throttle every ingest process shares
    (see :mod:`planner.carbon.recompute`)."""

    run = models.OneToOneField(Run, on_delete=models.CASCADE, primary_key=True, related_name="+")
    queued_at = models.DateTimeField()


class ImportedRun(models.Model):
    """A run brought over from CodeCarbon's emissions.csv, with CodeCarbon's figure and ours side by side."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="imported_runs")
    run_key = models.CharField(max_length=200)  # CodeCarbon run_id, or the line for files without one
    project_name = models.CharField(max_length=200, blank=True)
    experiment_id = models.CharField(max_length=200, blank=True)
    started_utc = models.DateTimeField()
    ended_utc = models.DateTimeField()
    duration_s = models.FloatField()
    energy_kwh = models.FloatField()
    codecarbon_emissions_g = models.FloatField()
    where = models.CharField(max_length=100, blank=True)
    codecarbon_pue = models.FloatField(null=True, blank=True)
    emissions_g = models.FloatField()  # ours: the same energy through our fallback chain
    note = models.TextField(blank=True)
    imported = models.ForeignKey(IntensityImport, null=True, blank=True, on_delete=models.SET_NULL)

    class Meta:
        ordering = ["-ended_utc"]
        constraints = [
            models.UniqueConstraint(fields=["project", "run_key", "ended_utc"], name="imported_run_unique")
        ]


# --- offsets --------------------------------------------------------------------------------------------


class OffsetPolicy(models.Model):
    """How a project would offset: which credits, which emissions figure, what buffer."""

    class EmissionsBasis(models.TextChoices):
        """Which emissions figure to offset: location-based (grid average) or market-based (contracts)."""

        LOCATION = "location", "location-based"
        MARKET = "market", "market-based"

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="offset_policy")
    credit_type = models.CharField(max_length=16, choices=CreditType.choices, default=CreditType.AVOIDANCE)
    emissions_basis = models.CharField(max_length=8, choices=EmissionsBasis.choices, default=EmissionsBasis.LOCATION)
    buffer_pct = models.FloatField(default=0.0, validators=PCT)
    whole_credits = models.BooleanField(default=False)


class CreditPrice(models.Model):
    """A project's price for one credit type, with where and when it was quoted."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="credit_prices")
    credit_type = models.CharField(max_length=16, choices=CreditType.choices)
    price_per_tonne = models.FloatField(validators=NON_NEGATIVE)
    currency = models.CharField(max_length=3, default="USD")
    source = models.CharField(max_length=300)
    as_of = models.DateField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["project", "credit_type"], name="credit_price_unique")]


class OffsetRetirement(models.Model):
    """Credits actually retired for a project (the ledger's other side); never subtracted from emissions."""

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="offset_retirements")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    retired_on = models.DateField()
    credit_type = models.CharField(max_length=16, choices=CreditType.choices)
    tonnes = models.FloatField(validators=NON_NEGATIVE)
    price_per_tonne = models.FloatField(validators=NON_NEGATIVE)
    currency = models.CharField(max_length=3, default="USD")
    registry = models.CharField(max_length=100, blank=True)
    reference = models.CharField(max_length=200, blank=True, help_text="serial numbers or retirement id")
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-retired_on", "-recorded_at"]

    @property
    def cost(self) -> float:
        return self.tonnes * self.price_per_tonne


# --- region preferences ----------------------------------------------------------------------------------


class RegionPreference(models.Model):
    """Where a project is willing to train; advice only ranks regions that pass these."""

    project = models.OneToOneField(Project, on_delete=models.CASCADE, related_name="region_preference")
    allowed = models.TextField(
        blank=True, help_text="one zone or cloud region per line, optionally followed by its PUE"
    )
    max_intensity_g_per_kwh = models.FloatField(null=True, blank=True, validators=NON_NEGATIVE)
    min_renewable_pct = models.FloatField(null=True, blank=True, validators=PCT)
    min_cfe_pct = models.FloatField(null=True, blank=True, validators=PCT)
    residency_group = models.CharField(max_length=8, blank=True, help_text="EU, EEA or an ISO2 country code")
    updated_at = models.DateTimeField(auto_now=True)
