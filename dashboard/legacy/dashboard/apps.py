from django.apps import AppConfig


class LegacyDashboardConfig(AppConfig):
    """The runs app's migrations from before the split (see dashboard.legacy)."""

    name = "dashboard.legacy.dashboard"
    label = "dashboard"
    verbose_name = "Migration history (before the split)"
    default_auto_field = "django.db.models.BigAutoField"
