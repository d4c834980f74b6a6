from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from planner.plans.models import FrontierJob, StageProfile


@admin.register(StageProfile)
class StageProfileAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "source", "num_stages", "gpu_name", "node", "created_at"]
    list_filter = ["project", "source"]
    search_fields = ["name", "gpu_name", "digest"]
    readonly_fields = ["digest", "size_bytes", "num_stages", "num_rows", "frequencies_mhz", "node", "run", "run_name",
                       "body_sha256", "recorded_at", "created_by", "created_at"]
    exclude = ["csv_text"]  # download it from the profile page


@admin.register(FrontierJob)
class FrontierJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "profile", "num_stages", "num_microbatches", "unit_time_s", "p_blocking_w", "schedule", "mode",
                    "status", "num_points", "created_at"]
    list_filter = ["status", "schedule", "mode"]
    readonly_fields = ["profile", "cache_key", "num_stages", "num_microbatches", "unit_time_s", "p_blocking_w",
                       "schedule", "mode", "progress_done", "progress_total", "num_points", "stop_reason",
                       "solve_time_s", "copied_from", "summary", "requested_by", "created_at", "updated_at",
                       "started_at", "finished_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[FrontierJob]:
        return super().get_queryset(request).defer("frontier_data", "realised_data")
