"""Forms of the carbon pages: each validates fully and says what is wrong; bad input changes nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import QuerySet

from dashboard.projects.models import Project
from dashboard.telemetry.models import Node, Run
from planner.carbon.advising import default_start, parse_allowed
from planner.carbon.models import (
    Basis,
    Certificate,
    CreditPrice,
    CreditType,
    IntensityRow,
    OffsetPolicy,
    OffsetRetirement,
    PowerPurchase,
    ProjectCarbon,
    RegionPreference,
    Site,
)
from planner.grid_carbon import UnknownLocationError, locate
from planner.grid_carbon.advice import MAX_WINDOW_HOURS
from planner.grid_carbon.datasets import country_codes
from planner.grid_carbon.importers.text import MAX_IMPORT_BYTES
from planner.grid_carbon.regions import enclosing_zone


def _where(value: str, *, required: bool = True, known_only: bool = True, project_id: int | None = None) -> str:
    value = (value or "").strip()
    if not value:
        if required:
            raise ValidationError("Enter a grid zone (SE-SE3), a cloud region (aws:eu-north-1) or a country (DE).")
        return ""
    try:
        location = locate(value)
    except UnknownLocationError as exc:
        raise ValidationError(str(exc)) from None
    # Any well-formed zone id parses; a typo ("Germany") would silently mean the world average, so an
    # id must be known to the embedded data or have imported rows the project may use (e.g. a WattTime region).
    known = location.region is not None or location.country_iso3 is not None or (
        location.zone is not None
        and (enclosing_zone(location.zone) is not None or IntensityRow.objects.for_project(project_id).filter(zone=location.zone).exists())
    )
    if known_only and not known:
        raise ValidationError(
            f"{value!r} is not a known zone, cloud region or country, and no intensity data was imported for it"
        )
    return value


def _boundary(value: str) -> str:
    value = value.strip().upper()
    if value in ("EU", "EEA") or value in country_codes():
        return value
    raise ValidationError(f"{value!r} is not EU, EEA or an ISO 3166 alpha-2 country code")


def _offer(form: forms.BaseForm, name: str, queryset: QuerySet[Any]) -> None:
    """Offer only ``queryset`` in the form's model-choice field ``name``."""
    field = form.fields[name]
    assert isinstance(field, forms.ModelChoiceField)
    field.queryset = queryset


class ImportForm(forms.Form):
    file = forms.FileField(help_text="Electricity Maps CSV or API JSON, UK Carbon Intensity JSON, WattTime JSON, "
                           "or CodeCarbon emissions.csv")
    zone = forms.CharField(required=False, max_length=100,
                           help_text="optional: file the data under this zone (or this cloud region's zone)")
    basis = forms.ChoiceField(choices=[(Basis.LIFECYCLE, "lifecycle (default)"), (Basis.DIRECT, "direct")],
                              initial=Basis.LIFECYCLE, help_text="which Electricity Maps intensity to import")
    project = forms.ModelChoiceField(
        queryset=Project.objects.none(), required=False, empty_label="— shared by every project (staff) —",
        help_text="whose data: a project's own data changes only its runs' figures (CodeCarbon runs go "
                  "into it); only staff may import shared data, used by every project")
    timezone = forms.CharField(initial="UTC", max_length=64,
                               help_text="CodeCarbon files only: the machine's time zone (its timestamps are local)")

    def __init__(self, *args: Any, projects: Any = None, may_share: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.may_share = may_share
        if projects is not None:
            _offer(self, "project", projects)
        if not may_share:  # offer only the user's projects; clean_project says why an empty choice fails
            field = self.fields["project"]
            assert isinstance(field, forms.ModelChoiceField)
            field.empty_label = None

    def clean_project(self) -> Project | None:
        project = self.cleaned_data.get("project")
        if project is None and not self.may_share:
            raise ValidationError("Choose your project: only staff may import data shared by every project.")
        return project

    def clean_file(self) -> Any:
        upload = self.cleaned_data["file"]
        if upload.size > MAX_IMPORT_BYTES:
            raise ValidationError(f"The file is larger than {MAX_IMPORT_BYTES // 2**20} MiB.")
        return upload

    def clean_zone(self) -> str:
        # The file brings the data: a new zone id (a WattTime region, say) is fine here.
        return _where(self.cleaned_data.get("zone", ""), required=False, known_only=False)

    def clean_timezone(self) -> str:
        name = (self.cleaned_data.get("timezone") or "UTC").strip()
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValidationError(f"Unknown time zone {name!r}; use an IANA name such as Europe/Paris.") from None
        return name


class SiteForm(forms.ModelForm):
    class Meta:
        model = Site
        fields = ["name", "where", "pue", "note"]
        labels = {"where": "Zone or region", "pue": "PUE"}

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project = project

    def clean_where(self) -> str:
        return _where(self.cleaned_data.get("where", ""), project_id=self.project.pk)

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        clash = Site.objects.filter(project=self.project, name=name).exclude(pk=self.instance.pk)
        if clash.exists():
            raise ValidationError(f"This project already has a site named {name!r}.")
        return name

    def save(self, commit: bool = True) -> Site:
        self.instance.project = self.project
        return super().save(commit)


class AssignForm(forms.Form):
    node = forms.ModelChoiceField(queryset=Node.objects.none())
    site = forms.ModelChoiceField(queryset=Site.objects.none(), required=False,
                                  empty_label="— no site (agent flag or project default) —")

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer(self, "node", Node.objects.filter(project=project))
        _offer(self, "site", Site.objects.filter(project=project))


class ProjectCarbonForm(forms.ModelForm):
    class Meta:
        model = ProjectCarbon
        fields = ["default_where", "default_pue", "supplier_factor_g_per_kwh", "supplier_factor_source",
                  "residual_mix_g_per_kwh", "residual_mix_source"]
        labels = {"default_where": "Default zone or region", "default_pue": "Default PUE",
                  "supplier_factor_g_per_kwh": "Supplier factor (g/kWh)", "supplier_factor_source": "Its source",
                  "residual_mix_g_per_kwh": "Residual mix (g/kWh)", "residual_mix_source": "Its source"}

    def clean_default_where(self) -> str:
        return _where(self.cleaned_data.get("default_where", ""), required=False, project_id=self.instance.project_id)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for factor, source in (("supplier_factor_g_per_kwh", "supplier_factor_source"),
                               ("residual_mix_g_per_kwh", "residual_mix_source")):
            if data.get(factor) is not None and not (data.get(source) or "").strip():
                self.add_error(source, "Say where this factor comes from (supplier disclosure, AIB 2024 …).")
        return data


class CertificateForm(forms.ModelForm):
    class Meta:
        model = Certificate
        fields = ["kind", "label", "energy_kwh", "vintage_year", "market_boundary", "retired",
                  "emission_factor_g_per_kwh"]
        labels = {"kind": "Kind (GO, REC, I-REC)", "energy_kwh": "Energy (kWh)",
                  "emission_factor_g_per_kwh": "Factor (g/kWh)"}

    def clean_market_boundary(self) -> str:
        return _boundary(self.cleaned_data["market_boundary"])

    def clean_vintage_year(self) -> int:
        year = self.cleaned_data["vintage_year"]
        if not 2000 <= year <= 2100:
            raise ValidationError("Enter the certificates' vintage year, e.g. 2026.")
        return int(year)


class PowerPurchaseForm(forms.ModelForm):
    class Meta:
        model = PowerPurchase
        fields = ["label", "vintage_year", "market_boundary", "certificates_retained", "share_pct", "energy_kwh",
                  "emission_factor_g_per_kwh"]
        labels = {"share_pct": "Share of the energy (%)", "energy_kwh": "or fixed energy (kWh)",
                  "emission_factor_g_per_kwh": "Factor (g/kWh)"}

    def clean_market_boundary(self) -> str:
        return _boundary(self.cleaned_data["market_boundary"])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if (data.get("share_pct") is None) == (data.get("energy_kwh") is None):
            raise ValidationError("A PPA covers either a share of the energy (%) or a fixed energy (kWh): give one.")
        return data


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = RegionPreference
        fields = ["allowed", "max_intensity_g_per_kwh", "min_renewable_pct", "min_cfe_pct", "residency_group"]
        widgets = {"allowed": forms.Textarea(attrs={"rows": 6, "placeholder": "SE-SE3 1.1\naws:eu-north-1\n"
                                                                              "gcp:europe-north1 1.09"})}
        labels = {"min_cfe_pct": "Min carbon-free %", "min_renewable_pct": "Min renewable %",
                  "max_intensity_g_per_kwh": "Max g/kWh"}

    def clean_allowed(self) -> str:
        text = self.cleaned_data.get("allowed", "")
        _, problems = parse_allowed(text)
        if problems:
            raise ValidationError(problems)
        return text

    def clean_residency_group(self) -> str:
        value = (self.cleaned_data.get("residency_group") or "").strip()
        return _boundary(value) if value else ""


class AdviceForm(forms.Form):
    run = forms.ModelChoiceField(queryset=Run.objects.none(), required=False,
                                 empty_label="— type the energy and duration instead —",
                                 help_text="take energy, duration and current region from a past run")
    energy_kwh = forms.FloatField(required=False, min_value=0.0, label="Energy (kWh, GPU)")
    duration_h = forms.FloatField(required=False, min_value=0.01, max_value=MAX_WINDOW_HOURS,
                                  label="Duration (h)")
    interruptible = forms.BooleanField(required=False, label="Can pause and resume (checkpoints)")
    earliest_start = forms.DateTimeField(required=False, label="Earliest start (UTC)",
                                         help_text="default: the next whole hour")
    window_h = forms.IntegerField(initial=24, min_value=0, max_value=MAX_WINDOW_HOURS,
                                  label="May start up to … hours later")
    current_where = forms.CharField(required=False, max_length=100, label="Current region or zone",
                                    help_text="default: where the past run ran, else the project default")
    current_pue = forms.FloatField(required=False, min_value=1.0, max_value=5.0, label="Current PUE")
    candidate_pue = forms.FloatField(
        required=False, min_value=1.0, max_value=5.0, label="PUE of candidate regions",
        help_text="for regions without their own (allowed list, a site); default: the past run's, else the project's",
    )

    def __init__(self, *args: Any, runs: Any = None, project_id: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.project_id = project_id
        if runs is not None:
            _offer(self, "run", runs)

    def clean_current_where(self) -> str:
        return _where(self.cleaned_data.get("current_where", ""), required=False, project_id=self.project_id)

    def clean_earliest_start(self) -> datetime:
        value = self.cleaned_data.get("earliest_start")
        if value is None:
            return default_start()
        value = value.astimezone(UTC)
        # Advice works in whole UTC hours: round up so the run never starts before the time asked.
        floored = value.replace(minute=0, second=0, microsecond=0)
        return floored if floored == value else floored + timedelta(hours=1)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("run") is None and (data.get("energy_kwh") is None or data.get("duration_h") is None):
            raise ValidationError("Choose a past run, or enter both the energy (kWh) and the duration (h).")
        return data


class OffsetPolicyForm(forms.ModelForm):
    class Meta:
        model = OffsetPolicy
        fields = ["credit_type", "emissions_basis", "buffer_pct", "whole_credits"]
        labels = {"buffer_pct": "Buffer %", "emissions_basis": "Offset which figure",
                  "whole_credits": "Registries sell whole tonnes (round credits up)"}

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("credit_type") == CreditType.CUSTOM and not CreditPrice.objects.filter(
            project_id=self.instance.project_id, credit_type=CreditType.CUSTOM
        ).exists():
            self.add_error("credit_type", "Custom credits have no default price: add a custom price first.")
        return data


class CreditPriceForm(forms.ModelForm):
    credit_type = forms.ChoiceField(choices=CreditType.choices)

    class Meta:
        model = CreditPrice
        fields = ["credit_type", "price_per_tonne", "currency", "source", "as_of"]
        widgets = {"as_of": forms.DateInput(attrs={"type": "date"})}
        labels = {"as_of": "Price date", "source": "Price source", "price_per_tonne": "Price per tonne"}

    def clean_currency(self) -> str:
        code = self.cleaned_data["currency"].strip().upper()
        if len(code) != 3 or not code.isalpha():
            raise ValidationError("Use a three-letter currency code such as USD or EUR.")
        return code


class RetirementForm(forms.ModelForm):
    class Meta:
        model = OffsetRetirement
        fields = ["retired_on", "credit_type", "tonnes", "price_per_tonne", "currency", "registry", "reference",
                  "run"]
        labels = {"price_per_tonne": "Price per tonne"}
        widgets = {"retired_on": forms.DateInput(attrs={"type": "date"})}

    def __init__(self, *args: Any, project: Project, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _offer(self, "run", Run.objects.filter(project=project))
        self.instance.project = project

    def clean_currency(self) -> str:
        code = self.cleaned_data["currency"].strip().upper()
        if len(code) != 3 or not code.isalpha():
            raise ValidationError("Use a three-letter currency code such as USD or EUR.")
        return code

    def clean_retired_on(self) -> Any:
        day = self.cleaned_data["retired_on"]
        if day > datetime.now(UTC).date() + timedelta(days=1):
            raise ValidationError("Credits cannot be retired in the future.")
        return day
