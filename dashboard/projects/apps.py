from django.apps import AppConfig


class ProjectsConfig(AppConfig):
    name = "dashboard.projects"
    label = "projects"
    verbose_name = "Projects and access"
    default_auto_field = "django.db.models.BigAutoField"
