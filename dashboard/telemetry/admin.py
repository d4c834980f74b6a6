from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest

from dashboard.telemetry.delivery import replay
from dashboard.telemetry.models import (
    DeadLetter,
    EnrolmentToken,
    Gpu,
    Node,
    Rejection,
    Run,
    RunGpu,
    RunNode,
    RunTag,
)
from dashboard.telemetry.nodes import revoke_enrolment_token


@admin.register(Node)
class NodeAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "enrolled_by", "key_id", "reported_name", "last_seen_at", "created_at"]
    list_filter = ["project"]
    search_fields = ["name", "reported_name", "key_id"]
    # The signing key is a secret: never shown or edited here (rotate it with `create_node --rotate`).
    exclude = ["signing_key_hex"]
    readonly_fields = ["key_id", "enrolled_by", "reported_name", "last_seen_at"]


@admin.register(EnrolmentToken)
class EnrolmentTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by ``manage.py create_enrolment_token`` (the only time one is visible); here they
    are listed and revoked. Revoking one stops every node that signs with it."""

    list_display = ["name", "project", "key_id", "nodes_enrolled", "created_by", "created_at", "last_used_at",
                    "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "key_id", "project__name"]
    exclude = ["signing_key_hex"]
    readonly_fields = ["project", "key_id", "created_by", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[EnrolmentToken]:
        return super().get_queryset(request).select_related("project", "created_by").annotate(enrolled=Count("nodes"))

    @admin.display(description="nodes enrolled", ordering="enrolled")
    def nodes_enrolled(self, token: EnrolmentToken) -> int:
        return getattr(token, "enrolled", 0)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke the selected tokens (every node enrolled with them stops)")
    def revoke(self, request: HttpRequest, queryset: QuerySet[EnrolmentToken]) -> None:
        stopped = sum(revoke_enrolment_token(token) for token in queryset)
        self.message_user(
            request, f"revoked {queryset.count()} enrolment token(s); {stopped} node(s) enrolled with them are "
            "refused from now on (give a node its own token with `manage.py create_node NODE --project P --rotate`)",
            messages.WARNING,
        )


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
    list_display = ["received_at", "kind", "reason_code", "node_name", "key_id", "reason", "size_bytes"]
    list_filter = ["reason_code", "kind"]
    search_fields = ["node_name", "key_id", "reason"]
    readonly_fields = ["received_at", "kind", "reason_code", "node_name", "key_id", "node", "reason", "size_bytes"]


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    """Messages a worker could neither store nor refuse, kept whole; replay them once the cause is fixed."""

    list_display = ["created_at", "task", "node_name", "error", "replayed_at", "replay_outcome"]
    list_filter = ["task", ("replayed_at", admin.EmptyFieldListFilter)]
    search_fields = ["node_name", "error"]
    readonly_fields = ["created_at", "task", "node_name", "envelope_json", "error", "replayed_at", "replay_outcome"]
    actions = ["replay_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Replay the selected messages (store them now, or record why not)")
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        said = [f"{letter.pk}: {replay(letter)}" for letter in queryset.order_by("created_at")]
        self.message_user(request, f"replayed {len(said)} message(s): " + "; ".join(said), messages.INFO)
