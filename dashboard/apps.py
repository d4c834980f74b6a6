from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    verbose_name = "Wattwise runs"
    default_auto_field = "django.db.models.BigAutoField"
