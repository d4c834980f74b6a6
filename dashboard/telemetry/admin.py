from django.contrib import admin

from dashboard.telemetry.models import Gpu, Node, Rejection, Run, RunGpu, RunNode, RunTag


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "last_seen_at", "created_at"]
    list_filter = ["project"]
    # The signing key is a secret: never shown or edited here (rotate it with `create_node --rotate`).
    exclude = ["signing_key_hex"]


@admin.register(Gpu)
class GpuAdmin(admin.ModelAdmin):
    list_display = ["uuid", "node", "index", "name", "energy_source", "simulated"]
    list_filter = ["simulated", "energy_source"]


class RunTagInline(admin.TabularInline):
    model = RunTag
    extra = 0


class RunNodeInline(admin.TabularInline):
    model = RunNode
    extra = 0
    readonly_fields = ["node", "stream", "backend", "host", "opened_at", "closed_at", "last_seq", "samples_declared"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "status", "simulated", "started_at", "ended_at"]
    list_filter = ["project", "status", "simulated"]
    inlines = [RunTagInline, RunNodeInline]


@admin.register(RunGpu)
class RunGpuAdmin(admin.ModelAdmin):
    list_display = ["run", "gpu", "energy_j", "samples", "peak_power_w"]
    readonly_fields = ["run", "gpu", "energy_j", "samples", "power_sum_w", "peak_power_w", "first_ms", "last_ms"]


@admin.register(Rejection)
class RejectionAdmin(admin.ModelAdmin):
    list_display = ["received_at", "kind", "node_name", "reason", "size_bytes"]
    list_filter = ["kind"]
    readonly_fields = ["received_at", "kind", "node_name", "node", "reason", "size_bytes"]
