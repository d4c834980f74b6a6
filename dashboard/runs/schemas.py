"""Response schemas of the runs part of the API: projects, runs, GPUs and samples.

Field names carry their units (``energy_j``, ``t_ms``, ``power_mw``); times of day are ISO 8601 UTC
datetimes, times on a GPU's sample clock are epoch milliseconds.
"""

from __future__ import annotations

from datetime import datetime

from ninja import Field, Schema


class ProjectOut(Schema):
    id: int
    name: str
    created_at: datetime
    runs: int = Field(alias="run_count", description="number of runs in the project")


class NodeTotals(Schema):
    node: str
    gpus: int
    samples: int
    energy_j: float


class ComponentEnergy(Schema):
    """One component's share of a run's energy."""

    component: str = Field(description="gpu, cpu (CPU packages, RAPL) or dram (their DRAM, RAPL)")
    energy_j: float
    devices: int = Field(description="devices that measured it: GPUs, or CPU packages")


class RunCarbonFigures(Schema):
    """Stored emissions of a run, as last computed (``stale`` says they are due a recompute)."""

    emissions_g: float = Field(description="location-based emissions, g CO2e")
    market_emissions_g: float = Field(description="market-based emissions, g CO2e")
    facility_energy_kwh: float = Field(description="the run's energy (every component) times PUE, kWh")
    pue: float
    computed_at: datetime
    stale: bool = Field(description="something the figures depend on changed since they were computed")


class RunOut(Schema):
    """A run as the runs list shows it."""

    id: int
    name: str
    project_id: int
    project: str
    status: str = Field(description="running, finished, or interrupted (its agents went silent without closing)")
    simulated: bool
    tags: list[str]
    started_at: datetime | None
    ended_at: datetime | None
    gpus: int = Field(description="GPUs that sent readings")
    samples: int
    energy_j: float = Field(description="energy, sum of counter differences over every device: GPUs and, where "
                                        "the agent read RAPL, CPU packages and DRAM")
    duration_s: float = Field(description="first reading of any device to the last reading of any device")
    mean_power_w: float = Field(description="energy over duration: the run's mean total draw")


class StreamCompletenessOut(Schema):
    """One agent session's part of a run: what it declared when it closed against what is stored."""

    node: str
    stream: str = Field(description="the agent session's id")
    closed: bool = Field(description="the session sent close_run")
    complete: bool = Field(description="closed, every batch stored and as many samples as it declared")
    samples_declared: int | None = Field(description="samples the session said it sent; null until it closed")
    samples_stored: int
    batches_stored: int
    last_seq: int | None = Field(description="its last batch number: declared when closed, else the highest stored")
    missing_seqs: list[list[int]] = Field(description="inclusive [first, last] ranges of batch numbers not stored")


class CompletenessOut(Schema):
    """Whether the run holds every sample its agents sent."""

    complete: bool = Field(description="every session closed and nothing it sent is missing")
    samples_declared: int | None = Field(description="samples every session declared; null while one is open")
    samples_stored: int
    batches_missing: int
    receipts_expired: bool = Field(description="the run's batch receipts expired with its raw data: "
                                               "completeness can no longer be checked")
    streams: list[StreamCompletenessOut]


class RunDetail(RunOut):
    """A run with the figures of the run page's cards."""

    energy_kwh: float
    gpu_hours: float = Field(description="sum over GPUs of each GPU's span of readings, hours")
    peak_gpu_power_w: float = Field(description="highest single-GPU reading")
    estimated: bool = Field(description="some energy came from integrating power, not the energy counter")
    first_sample_at: datetime | None
    last_sample_at: datetime | None
    nodes: list[NodeTotals]
    components: list[ComponentEnergy] = Field(description="energy by component, GPU first")
    carbon: RunCarbonFigures | None = Field(description="stored emissions, null until first computed")
    completeness: CompletenessOut = Field(description="samples declared by the agents against those stored")


class RunGpuOut(Schema):
    """One device's part in a run: a GPU, or a CPU package or its DRAM (``component``). ``id`` is what the
    samples endpoints take."""

    id: int = Field(description="the run-GPU id used in /runs/{run_id}/gpus/{gpu_id}/…")
    component: str = Field(description="gpu, cpu (a CPU package, RAPL) or dram (its DRAM, RAPL)")
    uuid: str = Field(description="NVML UUID; RAPL-<node>-package-N[-dram] for a CPU package or its DRAM")
    node: str
    index: int = Field(description="NVML index on its node")
    name: str = Field(description="GPU model")
    energy_source: str = Field(description="counter, or power_integration for GPUs without the energy counter")
    power_field: str = Field(description="which NVML power reading was sampled: average or instant")
    simulated: bool
    estimated: bool
    samples: int
    energy_j: float
    mean_power_w: float
    peak_power_w: float
    first_ms: int | None = Field(description="epoch ms of its first reading")
    last_ms: int | None = Field(description="epoch ms of its last reading")
    streams: int = Field(description="agent streams that read it (more than one: e.g. every rank of a job sampling "
                                     "every GPU)")
    overlap_s: float = Field(description="time more than one stream read it at once; its energy is counted once, "
                                         "over the union of the time the streams covered")


class SamplePageOut(Schema):
    """Raw readings, column by column, in time order, exactly as the agent sent them."""

    from_ms: int | None = Field(description="range start used (epoch ms, inclusive); null if no readings")
    to_ms: int | None = Field(description="range end used (epoch ms, inclusive)")
    count: int = Field(description="samples in this page")
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")
    t_ms: list[int] = Field(description="epoch ms of each reading")
    energy_mj: list[int] = Field(description="cumulative energy counter, mJ (differences are energy)")
    power_mw: list[int]
    sm_clock_mhz: list[int]
    util_pct: list[int]
    temp_c: list[int]


class MetricBuckets(Schema):
    mean: list[float]
    min: list[float]
    max: list[float]


class BucketsOut(Schema):
    """Fixed-width buckets; only buckets holding readings are listed, so ``t_ms`` may skip."""

    from_ms: int | None
    to_ms: int | None
    bucket_ms: int = Field(description="bucket width, ms")
    source: str = Field(description="samples (raw readings) or minutes (per-minute rollups, for wide buckets)")
    t_ms: list[int] = Field(description="start of each bucket, epoch ms")
    power_w: MetricBuckets
    sm_clock_mhz: MetricBuckets
    util_pct: MetricBuckets
    temp_c: MetricBuckets
