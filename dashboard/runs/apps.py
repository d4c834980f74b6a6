from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "dashboard.runs"
    label = "runs"
    verbose_name = "Run pages"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashboard.runs import signals  # noqa: F401  (connects the page cache's receivers)
