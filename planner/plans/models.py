"""The planner app's data: stage profiles (uploaded, recorded by agents, or the shipped sample) and the
frontiers solved from them.

A ``StageProfile`` belongs to a project and holds the validated Perseus CSV as it was received; its
content digest (``perseus.Profile.digest()``) is unique in the project, so the same profile is stored
once. A ``FrontierJob`` is one planning request on a profile — pipeline shape, τ, P_blocking, schedule,
mode — with its status, progress and, once solved, the whole frontier stored compactly
(``Frontier.to_bytes()``: every plan, as deltas) plus the realised (re-evaluated) figures of every
point. ``cache_key`` hashes the profile digest with the parameters: the same request is never solved
twice, and an identical request in another project copies the stored result instead of solving.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from dashboard.projects.models import InProjectQuerySet, Project
from dashboard.telemetry.models import Node, Run
from planner.perseus.options import Mode as PerseusMode
from planner.perseus.schedule import Schedule as PerseusSchedule
from planner.units import MS_PER_S


class StageProfile(models.Model):
    class Source(models.TextChoices):
        UPLOAD = "upload", "uploaded"
        AGENT = "agent", "recorded by an agent"
        SAMPLE = "sample", "shipped sample"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="stage_profiles")
    name = models.CharField(max_length=200)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.UPLOAD)
    csv_text = models.TextField(help_text="The profile CSV as received (validated).")
    digest = models.CharField(max_length=64, help_text="SHA-256 of the profile's content (perseus Profile.digest).")
    size_bytes = models.PositiveIntegerField(default=0)
    num_stages = models.PositiveIntegerField()
    num_rows = models.PositiveIntegerField()
    frequencies_mhz = models.JSONField(default=list, help_text="Profiled SM frequencies, highest first.")
    gpu_name = models.CharField(max_length=200, blank=True)
    p_blocking_w = models.FloatField(null=True, blank=True, help_text="Blocking power stated with the profile.")
    # Agent-recorded profiles: who sent it, for which run, and the signed message body's digest.
    node = models.ForeignKey(Node, null=True, blank=True, on_delete=models.SET_NULL, related_name="stage_profiles")
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.SET_NULL, related_name="stage_profiles")
    run_name = models.CharField(max_length=200, blank=True)
    body_sha256 = models.CharField(max_length=64, blank=True)
    recorded_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = InProjectQuerySet["StageProfile"].as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["project", "digest"], name="stage_profile_unique_content")]

    def __str__(self) -> str:
        return self.name

    def get_absolute_url(self) -> str:
        return reverse("planner:profile", args=[self.pk])

    @property
    def min_freq_mhz(self) -> int | None:
        return min(self.frequencies_mhz) if self.frequencies_mhz else None

    @property
    def max_freq_mhz(self) -> int | None:
        return max(self.frequencies_mhz) if self.frequencies_mhz else None


class FrontierJobQuerySet(InProjectQuerySet["FrontierJob"]):
    project_path = "profile__project"


class FrontierJob(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "solving"
        DONE = "done", "done"
        FAILED = "failed", "failed"

    class Schedule(models.TextChoices):
        """The pipeline schedules the Perseus library plans for (its values)."""

        ONE_F_ONE_B = PerseusSchedule.ONE_F_ONE_B.value, "1F1B (synchronous)"
        GPIPE = PerseusSchedule.GPIPE.value, "GPipe"

    class Mode(models.TextChoices):
        """The Perseus library's solver modes (its values)."""

        DEFAULT = PerseusMode.DEFAULT.value, "default"
        LOWTIME = PerseusMode.LOWTIME.value, "lowtime-compatible"

    profile = models.ForeignKey(StageProfile, on_delete=models.CASCADE, related_name="frontiers")
    cache_key = models.CharField(max_length=64, db_index=True)
    num_stages = models.PositiveIntegerField()
    num_microbatches = models.PositiveIntegerField()
    unit_time_s = models.FloatField()
    p_blocking_w = models.FloatField()
    schedule = models.CharField(max_length=8, choices=Schedule.choices, default=Schedule.ONE_F_ONE_B)
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.DEFAULT)

    status = models.CharField(max_length=8, choices=Status.choices, default=Status.QUEUED)
    progress_done = models.BigIntegerField(default=0)
    progress_total = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)

    # Frontier.to_bytes(): compressed npz, every plan as deltas (no pickles).
    frontier_data = models.BinaryField(null=True, blank=True, editable=False)
    # Realised (discrete re-evaluation) time and energy of every point: compressed npz.
    realised_data = models.BinaryField(null=True, blank=True, editable=False)
    num_points = models.PositiveIntegerField(null=True, blank=True)
    stop_reason = models.CharField(max_length=300, blank=True)
    solve_time_s = models.FloatField(null=True, blank=True)
    copied_from = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Plain figures for lists and cards (baseline, fastest, slowest, least-energy and intrinsic choice).
    summary = models.JSONField(default=dict, blank=True)

    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    objects = FrontierJobQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-pk"]
        constraints = [models.UniqueConstraint(fields=["profile", "cache_key"], name="frontier_job_unique_request")]

    def __str__(self) -> str:
        return f"{self.profile.name}: {self.num_stages}×{self.num_microbatches}, τ={self.unit_time_s} s"

    def get_absolute_url(self) -> str:
        return reverse("planner:frontier", args=[self.pk])

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.DONE, self.Status.FAILED)

    @property
    def unit_time_text(self) -> str:
        """τ as people write it: '1 ms', '0.1 ms'."""
        return f"{round(self.unit_time_s * MS_PER_S, 9):g} ms"

    @property
    def intrinsic_saving_pct(self) -> float | None:
        """Energy the no-straggler plan saves against all-max, in per cent (None until solved)."""
        intrinsic = (self.summary or {}).get("intrinsic")
        return 100.0 * float(intrinsic["saving_fraction"]) if intrinsic else None

    @property
    def progress_fraction(self) -> float:
        if self.status == self.Status.DONE:
            return 1.0
        if self.progress_total <= 0:
            return 0.0
        return min(1.0, self.progress_done / self.progress_total)
