from django.apps import AppConfig


class TelemetryConfig(AppConfig):
    name = "dashboard.telemetry"
    label = "telemetry"
    verbose_name = "Telemetry: nodes, GPUs, runs and samples"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashboard.telemetry import versions  # noqa: F401  # connects the run version tokens' receivers
