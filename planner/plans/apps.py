from django.apps import AppConfig


class PlansConfig(AppConfig):
    """Frequency plans. The label stays ``planner``, as the tables (``planner_*``) were named."""

    name = "planner.plans"
    label = "planner"
    verbose_name = "Frequency plans"
    default_auto_field = "django.db.models.BigAutoField"
