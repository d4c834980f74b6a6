from django.urls import path

from planner.carbon import project_views, views

app_name = "carbon"
urlpatterns = [
    path("", views.index, name="index"),
    path("data/", views.intensity_data, name="data"),
    path("data/jobs/<int:pk>/", views.import_job, name="import_job"),
    path("runs/<int:pk>/hours/", views.run_hours, name="run_hours"),
    path("projects/<int:pk>/", project_views.overview, name="project"),
    path("projects/<int:pk>/sites/", project_views.sites, name="sites"),
    path("projects/<int:pk>/preferences/", project_views.preferences, name="preferences"),
    path("projects/<int:pk>/advice/", project_views.advice, name="advice"),
    path("projects/<int:pk>/offsets/", project_views.offsets, name="offsets"),
    path("projects/<int:pk>/offsets.csv", project_views.offsets_csv, name="offsets_csv"),
]
