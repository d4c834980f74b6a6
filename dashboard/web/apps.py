from django.apps import AppConfig


class WebConfig(AppConfig):
    name = "dashboard.web"
    label = "web"
    verbose_name = "Shared web parts"
    default_auto_field = "django.db.models.BigAutoField"
