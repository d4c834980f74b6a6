"""Admin for the carbon app: sites and node assignments, contracts, prices, preferences; stored
figures and intensity rows read-only (they are computed or imported, never typed)."""

from django.contrib import admin

from planner.carbon.models import (
    Certificate,
    CreditPrice,
    ImportedRun,
    ImportJob,
    IntensityImport,
    IntensityRow,
    NodeSite,
    OffsetPolicy,
    OffsetRetirement,
    PowerPurchase,
    ProjectCarbon,
    ProviderStatus,
    RegionPreference,
    RunCarbon,
    Site,
)


class NodeSiteInline(admin.TabularInline):
    model = NodeSite
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "where", "pue"]
    list_filter = ["project"]
    inlines = [NodeSiteInline]


@admin.register(NodeSite)
class NodeSiteAdmin(admin.ModelAdmin):
    list_display = ["node", "site", "assigned_at"]


@admin.register(ProjectCarbon)
class ProjectCarbonAdmin(admin.ModelAdmin):
    list_display = ["project", "default_where", "default_pue", "supplier_factor_g_per_kwh", "residual_mix_g_per_kwh"]


@admin.register(Certificate)
class CertificateAdmin(admin.ModelAdmin):
    list_display = ["project", "kind", "label", "energy_kwh", "vintage_year", "market_boundary", "retired"]
    list_filter = ["project", "vintage_year"]


@admin.register(PowerPurchase)
class PowerPurchaseAdmin(admin.ModelAdmin):
    list_display = ["project", "label", "vintage_year", "market_boundary", "share_pct", "energy_kwh"]


@admin.register(RegionPreference)
class RegionPreferenceAdmin(admin.ModelAdmin):
    list_display = ["project", "max_intensity_g_per_kwh", "min_renewable_pct", "min_cfe_pct", "residency_group"]


@admin.register(OffsetPolicy)
class OffsetPolicyAdmin(admin.ModelAdmin):
    list_display = ["project", "credit_type", "emissions_basis", "buffer_pct", "whole_credits"]


@admin.register(CreditPrice)
class CreditPriceAdmin(admin.ModelAdmin):
    list_display = ["project", "credit_type", "price_per_tonne", "currency", "as_of", "source"]


@admin.register(OffsetRetirement)
class OffsetRetirementAdmin(admin.ModelAdmin):
    list_display = ["project", "retired_on", "credit_type", "tonnes", "price_per_tonne", "registry", "reference"]


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(IntensityImport)
class IntensityImportAdmin(ReadOnlyAdmin):
    list_display = ["imported_at", "project", "filename", "format", "zones", "rows_created", "rows_updated",
                    "imported_by"]


@admin.register(ImportJob)
class ImportJobAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "filename", "project", "requested_by", "state", "rows_read", "message"]
    list_filter = ["state"]


@admin.register(IntensityRow)
class IntensityRowAdmin(ReadOnlyAdmin):
    list_display = ["zone", "project", "start_utc", "granularity", "intensity_g_per_kwh", "basis", "source",
                    "is_forecast"]
    list_filter = ["zone", "granularity", "basis", "is_forecast", "origin", "project"]


@admin.register(RunCarbon)
class RunCarbonAdmin(ReadOnlyAdmin):
    list_display = ["run", "emissions_g", "market_emissions_g", "fallback_hours", "hours", "stale", "computed_at"]


@admin.register(ImportedRun)
class ImportedRunAdmin(ReadOnlyAdmin):
    list_display = ["project", "run_key", "ended_utc", "energy_kwh", "codecarbon_emissions_g", "emissions_g"]


@admin.register(ProviderStatus)
class ProviderStatusAdmin(ReadOnlyAdmin):
    list_display = ["provider", "enabled", "last_success_at", "last_error_at"]
