from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "dashboard.runs"
    label = "runs"
    verbose_name = "Run pages"
    default_auto_field = "django.db.models.BigAutoField"
