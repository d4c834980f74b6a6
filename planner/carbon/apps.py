from django.apps import AppConfig


class CarbonConfig(AppConfig):
    name = "planner.carbon"
    label = "carbon"
    verbose_name = "Wattwise carbon"
    default_auto_field = "django.db.models.BigAutoField"
