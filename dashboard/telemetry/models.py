"""Telemetry's data: the nodes agents run on and their GPUs, runs as agents report them, and the stored
samples.

Samples are stored columnar: one ``SampleWindow`` row per GPU per agent window, holding that window's
readings as one losslessly encoded blob (delta, byte shuffle, zstd: see dashboard.telemetry.columns), plus per-minute rollups that pages read.
Energy totals are sums of per-window counter differences, kept on ``RunGpu`` as batches land.

The tables keep the names they had before the apps were split (``dashboard_*``; see dashboard.legacy).
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from django.db import models
from django.urls import reverse

from dashboard.projects.models import InProjectQuerySet, Project
from wattwise_agent import wire


class EnrolmentToken(models.Model):
    """A project's token that nodes enrol themselves with (``manage.py create_enrolment_token``).

    A message signed with it is its project's: the node it names is registered on first contact, and
    the token signs for every node of the project that has no token of its own. Revoking it stops all
    of them at once. Only the key derived from the token and its public key id are stored.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="enrolment_tokens")
    name = models.CharField(max_length=100, help_text="what the token is for, e.g. the cluster it was given to")
    key_id = models.CharField(max_length=16, unique=True)  # wattwise_agent.wire.key_id: sent with every message
    signing_key_hex = models.CharField(max_length=64)  # wattwise_agent.wire.signing_key; the token is never stored
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)  # written at most once a minute

    objects = InProjectQuerySet["EnrolmentToken"].as_manager()

    class Meta:
        ordering = ["project__name", "name"]
        constraints = [
            models.UniqueConstraint(fields=["project", "name"], name="enrolment_token_name_unique_per_project")
        ]

    def __str__(self) -> str:
        return f"{self.project.name}/{self.name}"

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


class Node(models.Model):
    """A training machine running an agent; its messages are signed with a key derived from a token.

    The token is the node's own (``create_node``: ``key_id`` and ``signing_key_hex`` are set) or its
    project's enrolment token (``enrolled_by``; both blank). Nodes registered before key ids existed
    have a signing key but no key id: they are found by name until their token is rotated.
    """

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="nodes")
    name = models.CharField(max_length=200)
    # HMAC key derived from the node's own token (wattwise_agent.wire.signing_key); the token itself is never stored.
    signing_key_hex = models.CharField(max_length=64, blank=True)
    key_id = models.CharField(max_length=16, blank=True)  # wattwise_agent.wire.key_id of the node's own token
    enrolled_by = models.ForeignKey(
        EnrolmentToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="nodes"
    )
    # The name the agent last sent when it differs from the node's: its token says which node it is.
    reported_name = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True)

    objects = InProjectQuerySet["Node"].as_manager()

    class Meta:
        db_table = "dashboard_node"
        ordering = ["name"]
        constraints = [
            # Name first: the index also serves lookups by name alone (agents that send no key id).
            models.UniqueConstraint(fields=["name", "project"], name="node_name_unique_per_project"),
            models.UniqueConstraint(fields=["key_id"], condition=~models.Q(key_id=""), name="node_key_id_unique"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def has_own_token(self) -> bool:
        return bool(self.signing_key_hex)


class Gpu(models.Model):
    """A measured device of a node, known by its UUID: a physical GPU (its NVML UUID), or a CPU package or
    its DRAM read through RAPL (``component``). The table keeps its name; pages that speak of GPUs show
    only ``component = gpu``."""

    class Component(models.TextChoices):
        """What part of the node the device is (the values the wire format defines)."""

        GPU = wire.COMPONENT_GPU, "GPU"
        CPU = wire.COMPONENT_CPU, "CPU"
        DRAM = wire.COMPONENT_DRAM, "DRAM"

    class EnergySource(models.TextChoices):
        """What the GPU's energy readings are (the values the wire format defines)."""

        COUNTER = wire.ENERGY_COUNTER, "energy counter"
        POWER_INTEGRATION = wire.POWER_INTEGRATION, "power integration (estimated)"

    class PowerField(models.TextChoices):
        """Which NVML power reading the GPU's power column holds (the values the wire format defines)."""

        INSTANT = wire.POWER_INSTANT, "instant"
        AVERAGE = wire.POWER_AVERAGE, "average"

    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="gpus")
    uuid = models.CharField(max_length=200)
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=200, blank=True)
    energy_source = models.CharField(max_length=32, choices=EnergySource.choices, default=EnergySource.COUNTER)
    power_field = models.CharField(max_length=16, choices=PowerField.choices, default=PowerField.AVERAGE)
    simulated = models.BooleanField(default=False)
    component = models.CharField(max_length=8, choices=Component.choices, default=Component.GPU)

    class Meta:
        db_table = "dashboard_gpu"
        ordering = ["node__name", "index"]
        constraints = [models.UniqueConstraint(fields=["node", "uuid"], name="gpu_unique_per_node")]

    def __str__(self) -> str:
        return f"{self.node.name}/{self.index} ({self.uuid})"


class Run(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", "running"
        FINISHED = "finished", "finished"
        # Its agents went silent for WATTWISE_SILENT_AFTER_S without closing (killed, node lost); a batch
        # that arrives later makes it running again.
        INTERRUPTED = "interrupted", "interrupted"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="runs")
    name = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    simulated = models.BooleanField(default=False)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InProjectQuerySet["Run"].as_manager()

    class Meta:
        db_table = "dashboard_run"
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["project", "name"], name="run_unique_per_project")]
        indexes = [
            # liveness.mark_silent_runs (beat, every minute): the running runs, a few among all ever made.
            models.Index(fields=["created_at"], condition=models.Q(status="running"), name="run_running_since"),
        ]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("run", args=[self.pk])


class RunTag(models.Model):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="tags")
    name = models.CharField(max_length=64)

    class Meta:
        db_table = "dashboard_runtag"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["run", "name"], name="run_tag_unique")]

    def __str__(self) -> str:
        return self.name


class RunNode(models.Model):
    """One agent session (stream) of a node taking part in a run. Agents open and close these."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="run_nodes")
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="run_nodes")
    stream = models.CharField(max_length=64)
    backend = models.CharField(max_length=32, blank=True)
    host = models.CharField(max_length=200, blank=True)
    opened_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    last_seq = models.BigIntegerField(null=True, blank=True)
    samples_declared = models.BigIntegerField(null=True, blank=True)
    # Where the agent said it runs (`--zone`, `--region`); the carbon app decides what to use.
    zone = models.CharField(max_length=64, blank=True)
    region = models.CharField(max_length=64, blank=True)
    # The run's units of work as this session's close_run reported them ({"tokens": 1000000, ...}; see work.py).
    work = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "dashboard_runnode"
        constraints = [models.UniqueConstraint(fields=["run", "node", "stream"], name="run_node_stream_unique")]


class RunWork(models.Model):
    """A unit of work entered for a run on its page: beats what its agents reported (``work.py``)."""

    class Unit(models.TextChoices):
        STEPS = "steps", "steps"
        SAMPLES = "samples", "samples"
        TOKENS = "tokens", "tokens"

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="entered_work")
    unit = models.CharField(max_length=8, choices=Unit.choices)
    amount = models.BigIntegerField()
    entered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    entered_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["run", "unit"], name="run_work_unit_unique"),
            models.CheckConstraint(condition=models.Q(amount__gt=0), name="run_work_amount_positive"),
        ]


# How a run's devices are listed (pages, exports): by node, then index. A node's CPU package and the DRAM beside it
# share an index; "cpu" sorts before "dram", and a GPU's index is its own.
DEVICE_ORDER = ("gpu__node__name", "gpu__index", "gpu__component")


class RunGpu(models.Model):
    """A GPU's part in a run, with running totals kept exact by the ingest path."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="run_gpus")
    gpu = models.ForeignKey(Gpu, on_delete=models.CASCADE, related_name="run_gpus")
    energy_j = models.FloatField(default=0.0)
    samples = models.BigIntegerField(default=0)
    power_sum_w = models.FloatField(default=0.0)
    peak_power_w = models.FloatField(default=0.0)
    first_ms = models.BigIntegerField(null=True)
    last_ms = models.BigIntegerField(null=True)
    # True when any of this run's windows for the GPU came from power integration, not the counter.
    estimated = models.BooleanField(default=False)
    # Each GPU counted once (dashboard.telemetry.coverage): the agent stream that sent the GPU's first window.
    # While no other stream has sent one, ingest stores windows as they are; once another does, ``shared``
    # is set and every later window counts only the time no other stream's stored windows cover.
    first_stream = models.CharField(max_length=64, blank=True)
    shared = models.BooleanField(default=False)
    streams = models.PositiveIntegerField(default=1)  # agent streams that sent windows of this GPU
    overlap_ms = models.BigIntegerField(default=0)  # time more than one stream read it at once (counted once)
    # The longest time one window covers, from its stream's previous reading to its last (a batch window,
    # unless an agent stalled): how far from a stretch of time a window that covers part of it can start.
    max_window_ms = models.BigIntegerField(default=0)
    # Windows that start before this time have been compacted where they could be (dashboard.telemetry.compaction):
    # the next pass starts here.
    compacted_ms = models.BigIntegerField(default=0, db_default=0)  # a database default: ingest inserts in SQL

    class Meta:
        db_table = "dashboard_rungpu"
        ordering = list(DEVICE_ORDER)
        constraints = [models.UniqueConstraint(fields=["run", "gpu"], name="run_gpu_unique")]

    @property
    def mean_power_w(self) -> float:
        return self.power_sum_w / self.samples if self.samples else 0.0

    @property
    def overlapped(self) -> bool:
        """More than one agent stream read this GPU at the same time (its energy is still counted once)."""
        return self.overlap_ms > 0

    @property
    def overlap_s(self) -> float:
        return self.overlap_ms / 1000


class SampleWindow(models.Model):
    """One GPU's readings over one agent window, columnar (see dashboard.telemetry.columns for the encoding)."""

    # No index of its own: (run_gpu, seq) and (run_gpu, first_ms) serve every lookup by GPU, and a third
    # index would only slow ingest down. Nothing needs (run_gpu, stream, seq) unique: a batch's windows are
    # written with its receipt, which is (migration 0017).
    run_gpu = models.ForeignKey(RunGpu, on_delete=models.CASCADE, related_name="windows", db_index=False)
    stream = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    first_ms = models.BigIntegerField()
    last_ms = models.BigIntegerField()
    samples = models.IntegerField()
    energy_j = models.FloatField()  # what this window counts: its readings' energy less time already covered
    prev_t_ms = models.BigIntegerField(null=True)  # the stream's reading before this window: where its time starts
    prev_energy_mj = models.BigIntegerField(null=True)
    # The window's six sample columns, losslessly encoded (dashboard.telemetry.columns.decode_window reads them).
    readings = models.BinaryField()
    # Null for a window as an agent sent it. A compacted row (dashboard.telemetry.compaction) holds several
    # consecutive windows of one stream: its readings end to end, and here each window's own first and last
    # reading, sample count and energy, so every figure read from it is the one its windows gave.
    parts = models.BinaryField(null=True)

    class Meta:
        db_table = "dashboard_samplewindow"
        indexes = [
            models.Index(fields=["run_gpu", "first_ms"], name="window_gpu_time"),
            # The continuity check's previous window and a stream's first one: one entry per window per
            # stream with each number, a third of the size a stream in every entry made it.
            models.Index(fields=["run_gpu", "seq"], name="window_gpu_seq"),
        ]


class GpuMinute(models.Model):
    """Per-GPU, per-minute rollup of a run: what charts of long runs read."""

    # No index of its own: the unique (run_gpu, minute_ms) serves every lookup by GPU.
    run_gpu = models.ForeignKey(RunGpu, on_delete=models.CASCADE, related_name="minutes", db_index=False)
    minute_ms = models.BigIntegerField()
    samples = models.IntegerField()
    energy_j = models.FloatField()
    power_sum_w = models.FloatField()
    power_min_w = models.FloatField()
    power_max_w = models.FloatField()
    sm_clock_sum_mhz = models.FloatField()
    util_sum_pct = models.FloatField()
    temp_max_c = models.FloatField()
    # The minute's extremes and the temperature sum, so charts over long spans draw real min–max bands and
    # a true mean temperature. Null only on minutes stored before they were kept whose windows were gone
    # when migration 0007 filled them in; readers then fall back to the minute's mean (or its maximum).
    sm_clock_min_mhz = models.FloatField(null=True)
    sm_clock_max_mhz = models.FloatField(null=True)
    util_min_pct = models.FloatField(null=True)
    util_max_pct = models.FloatField(null=True)
    temp_min_c = models.FloatField(null=True)
    temp_sum_c = models.FloatField(null=True)

    class Meta:
        db_table = "dashboard_gpuminute"
        constraints = [models.UniqueConstraint(fields=["run_gpu", "minute_ms"], name="minute_unique_per_gpu")]


class BatchReceipt(models.Model):
    """One row per accepted batch: the idempotency key (node, stream, seq) and what it carried."""

    # No index of its own: receipt_unique leads with the node (migration 0018).
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="receipts", db_index=False)
    stream = models.CharField(max_length=64)
    seq = models.BigIntegerField()
    # No index of its own: receipt_run_received leads with the run, and serves every lookup by run (and the
    # deletes that cascade from one).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="receipts", db_index=False)
    body_sha256 = models.CharField(max_length=64)
    samples = models.IntegerField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "dashboard_batchreceipt"
        constraints = [models.UniqueConstraint(fields=["node", "stream", "seq"], name="receipt_unique")]
        indexes = [
            # liveness.mark_silent_runs: has the run been heard from since, without walking its week's receipts.
            models.Index(fields=["run", "received_at"], name="receipt_run_received"),
        ]


class RunEvent(models.Model):
    """A marker from the training loop (step end, stage begin/end), as sent by the agent."""

    # No index of its own: event_run_kind_time leads with the run, and serves every lookup by run (and the
    # deletes that cascade from one).
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    node = models.ForeignKey(Node, on_delete=models.CASCADE, related_name="events")
    t_ms = models.BigIntegerField()
    kind = models.CharField(max_length=200)
    data = models.JSONField(default=dict)

    class Meta:
        db_table = "dashboard_runevent"
        indexes = [
            models.Index(fields=["run", "kind", "t_ms"], name="event_run_kind_time"),
            # The frequency plan client's ``plan`` markers (a few per run): which runs ran a frontier's plans.
            models.Index(fields=["run"], condition=models.Q(kind="plan"), name="event_plan_markers"),
        ]


class Rejection(models.Model):
    """A message the app refused, with the reason: nothing else from it is stored. Or, code ``implausible``, the
    intervals of a stored batch that count 0 J because no device could draw what their counter says."""

    class Kind(models.TextChoices):
        """The kind of message refused (the kinds the wire format defines)."""

        BATCH = wire.KIND_BATCH, "batch"
        OPEN_RUN = wire.KIND_OPEN_RUN, "open run"
        CLOSE_RUN = wire.KIND_CLOSE_RUN, "close run"
        STAGE_PROFILE = wire.KIND_STAGE_PROFILE, "stage profile"
        # Refused at the HTTP ingest endpoint before any envelope could be read, or of no known kind.
        REQUEST = "request", "HTTP request"

    class Code(models.TextChoices):
        """Why, in one word: what pages and ``/metrics`` group refusals by (``reason`` says the rest)."""

        UNKNOWN_KEY = "unknown_key", "unknown token or node"
        REVOKED = "revoked", "revoked token"
        BAD_SIGNATURE = "bad_signature", "bad signature"
        MALFORMED = "malformed", "malformed message"
        TOO_LARGE = "too_large", "message too large"
        REPLAY = "replay", "replayed sequence number"
        CLOCK = "clock", "clock in the future"
        CONTINUITY = "continuity", "window does not continue the previous one"
        PROFILE = "profile", "profile refused by the planner"
        IMPLAUSIBLE = "implausible", "implausible energy reading (counted 0 J)"

    received_at = models.DateTimeField(auto_now_add=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    reason_code = models.CharField(max_length=32, choices=Code.choices)
    node_name = models.CharField(max_length=200, blank=True)  # the name the message claimed
    key_id = models.CharField(max_length=16, blank=True)  # the key id the message named
    # The node it came from, when known: its token's node, or the only node with the claimed name.
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="rejections")
    reason = models.TextField()
    size_bytes = models.IntegerField(default=0)

    class Meta:
        db_table = "dashboard_rejection"
        ordering = ["-received_at"]
        # Pages and the runs list ask for the last hour's rejections.
        indexes = [models.Index(fields=["received_at"], name="rejection_received")]


class DeadLetter(models.Model):
    """An agent message a worker could neither store nor refuse (the database stayed unreachable past the
    retries, or an error no check foresaw), kept whole so an admin can replay it once the cause is fixed
    (the admin's Replay action, ``manage.py replay_dead_letters``). See ``dashboard.telemetry.delivery``."""

    created_at = models.DateTimeField(auto_now_add=True)
    task = models.CharField(max_length=64)  # the task that took it, e.g. wattwise.ingest_batch
    node_name = models.CharField(max_length=200, blank=True)  # the name the envelope claimed, if any
    # The envelope as JSON text with every non-ASCII character escaped: whatever it holds (a NUL, a lone
    # surrogate) can be stored, and json.loads gives back exactly what the worker received.
    envelope_json = models.TextField()
    error = models.TextField()
    replayed_at = models.DateTimeField(null=True, blank=True)
    replay_outcome = models.TextField(blank=True)  # what the last replay did (stored, rejected, failed again)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.task} from {self.node_name or '?'} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class RawHorizon(models.Model):
    """How far back raw data still reaches (one row, kept by ``dashboard.telemetry.retention``).

    Raw windows that start before ``windows_before_ms`` and receipts received before ``receipts_before``
    have been dropped by the raw retention; runs keep their totals, minute rollups, carbon and events, and
    pages say which stretch of a run's raw samples expired. No row: nothing has expired yet.
    """

    windows_before_ms = models.BigIntegerField()
    receipts_before = models.DateTimeField()
    retention_days = models.PositiveIntegerField()  # WATTWISE_RAW_RETENTION_DAYS when it was applied
    applied_at = models.DateTimeField()

    @property
    def windows_before(self) -> datetime:
        return datetime.fromtimestamp(self.windows_before_ms / 1000, UTC)
