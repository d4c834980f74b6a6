"""Forms of the planner pages: upload a profile, ask for a frontier, choose a plan for a straggler."""

from __future__ import annotations

import math
from typing import Any

from django import forms

from dashboard.projects.models import Project
from dashboard.telemetry.models import Run
from planner import perseus
from planner.plans.models import FrontierJob, StageProfile
from planner.plans.planning import Parameters, check_problem
from planner.plans.profiles import MAX_P_BLOCKING_W, MAX_UPLOAD_BYTES, suggested_p_blocking
from planner.units import MS_PER_S

MAX_MICROBATCHES = 100_000


class ProjectChoice(forms.ModelChoiceField):
    def __init__(self, projects: Any, **kwargs: Any) -> None:
        super().__init__(queryset=projects, empty_label=None, **kwargs)


class UploadForm(forms.Form):
    project = ProjectChoice(Project.objects.none(), help_text="Only members of this project will see it.")
    file = forms.FileField(
        label="Profile CSV",
        help_text="Columns stage,instruction,frequency,time,energy (MHz, s, J), as the Perseus / Zeus profiler writes them.",
        widget=forms.ClearableFileInput(attrs={"accept": ".csv,text/csv"}),
    )
    name = forms.CharField(max_length=200, required=False, help_text="Defaults to the file name.")
    gpu_name = forms.CharField(
        label="GPU", max_length=200, required=False, help_text="e.g. NVIDIA A100-SXM4-80GB; sets the default P_blocking."
    )

    def __init__(self, *args: Any, projects: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["project"]
        assert isinstance(field, ProjectChoice)
        field.queryset = projects

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            # Refused before reading it: nothing of it is kept.
            raise forms.ValidationError(
                f"profile is {upload.size:,} bytes, the limit is {MAX_UPLOAD_BYTES:,} bytes", code="too_large"
            )
        return upload

    def default_name(self) -> str:
        name = (self.cleaned_data.get("name") or "").strip()
        if name:
            return name
        filename = getattr(self.cleaned_data.get("file"), "name", "") or "profile"
        return filename.rsplit("/", 1)[-1].removesuffix(".csv").removesuffix(".CSV") or "profile"


class SampleForm(forms.Form):
    project = ProjectChoice(Project.objects.none())

    def __init__(self, *args: Any, projects: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["project"]
        assert isinstance(field, ProjectChoice)
        field.queryset = projects


def _finite(value: float, what: str) -> float:
    if not math.isfinite(value):
        raise forms.ValidationError(f"{what} must be a finite number")
    return value


class PlanForm(forms.Form):
    num_microbatches = forms.IntegerField(
        label="Microbatches per iteration", min_value=1, max_value=MAX_MICROBATCHES,
        help_text="M: microbatches each pipeline runs per iteration.",
    )
    unit_time_ms = forms.FloatField(
        label="Time unit τ (ms)", min_value=1e-6, max_value=10_000,
        help_text="The planner's time step. 1 ms is the artifact's; 0.1–0.2 ms follows the profile more closely "
                  "(more points, longer solve).",
    )
    p_blocking_w = forms.FloatField(
        label="P_blocking (W)", min_value=0, max_value=MAX_P_BLOCKING_W - 1,
        help_text="Power a GPU draws while it waits on communication or in a pipeline bubble.",
    )
    schedule = forms.ChoiceField(choices=FrontierJob.Schedule.choices, initial=FrontierJob.Schedule.ONE_F_ONE_B)
    mode = forms.ChoiceField(
        choices=FrontierJob.Mode.choices, initial=FrontierJob.Mode.DEFAULT,
        help_text="Default: plans never run longer than planned, saves more. Lowtime-compatible: reproduces "
                  "the Perseus artifact (lowtime 0.3.0) exactly.",
    )

    def __init__(self, *args: Any, profile: StageProfile, parsed: perseus.Profile | None = None, **kwargs: Any) -> None:
        self.profile = profile
        self.parsed = parsed
        p_blocking, self.p_blocking_basis = suggested_p_blocking(profile.gpu_name, profile.p_blocking_w)
        kwargs.setdefault("initial", {
            "num_microbatches": max(12, profile.num_stages),
            "unit_time_ms": 1.0,
            "p_blocking_w": p_blocking,
            "schedule": FrontierJob.Schedule.ONE_F_ONE_B,
            "mode": FrontierJob.Mode.DEFAULT,
        })
        super().__init__(*args, **kwargs)

    def clean_unit_time_ms(self) -> float:
        return _finite(self.cleaned_data["unit_time_ms"], "τ")

    def clean_p_blocking_w(self) -> float:
        return _finite(self.cleaned_data["p_blocking_w"], "P_blocking")

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.errors:
            return data
        params = self.parameters()
        if self.parsed is None:
            self.parsed = perseus.parse_profile(self.profile.csv_text)
        try:
            check_problem(self.parsed, params.problem(self.profile.num_stages))
        except perseus.PlannerError as exc:
            raise forms.ValidationError(str(exc)) from None
        return data

    def parameters(self) -> Parameters:
        d = self.cleaned_data
        return Parameters(
            num_microbatches=d["num_microbatches"],
            unit_time_s=round(d["unit_time_ms"] / MS_PER_S, 12),
            p_blocking_w=d["p_blocking_w"],
            schedule=d["schedule"],
            mode=d["mode"],
        )


class StragglerForm(forms.Form):
    """Enter T′, or pick a run to take its measured iteration time from (GET: nothing is stored)."""

    straggler_s = forms.FloatField(label="Straggler iteration time T′ (s)", required=False, min_value=1e-9)
    run = forms.TypedChoiceField(label="or take it from a run", required=False, coerce=int, empty_value=None)

    def __init__(self, *args: Any, runs: list[Run], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.runs = {r.pk: r for r in runs}
        field = self.fields["run"]
        assert isinstance(field, forms.TypedChoiceField)
        field.choices = [("", "— a run with step markers —")] + [
            (r.pk, f"{r.name} ({r.project.name})") for r in runs
        ]

    def clean_straggler_s(self) -> float | None:
        value = self.cleaned_data.get("straggler_s")
        return None if value is None else _finite(value, "T′")

    def chosen_run(self) -> Run | None:
        pk = self.cleaned_data.get("run")
        return self.runs.get(pk) if pk is not None else None

    @property
    def asked(self) -> bool:
        return bool(self.data.get("straggler_s") or self.data.get("run"))
