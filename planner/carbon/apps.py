from django.apps import AppConfig


class CarbonConfig(AppConfig):
    name = "planner.carbon"
    label = "carbon"
    verbose_name = "Wattwise carbon"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from planner.carbon import signals  # noqa: F401  (connects the receivers)
