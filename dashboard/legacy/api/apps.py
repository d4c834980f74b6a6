from django.apps import AppConfig


class LegacyApiConfig(AppConfig):
    """The API tokens' migrations from before the split (see dashboard.legacy)."""

    name = "dashboard.legacy.api"
    label = "api"
    verbose_name = "Migration history (before the split)"
    default_auto_field = "django.db.models.BigAutoField"
