from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dashboard import views

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="runs", permanent=False)),
    path("runs/", views.runs_list, name="runs"),
    path("runs/<int:pk>/", views.run_detail, name="run"),
    path("runs/<int:pk>/live.json", views.run_live, name="run_live"),
    path("runs/<int:pk>/summary.json", views.run_summary_json, name="run_summary"),
    path("runs/<int:pk>/gpus/<int:run_gpu_pk>/", views.gpu_detail, name="run_gpu"),
    path("runs/<int:pk>/gpus/<int:run_gpu_pk>/live.json", views.gpu_live, name="run_gpu_live"),
    path("", include("dashboard.export_urls")),
    path("", include("dashboard.compare_urls")),
    path("api/", include("dashboard.api.urls")),
    path("planner/", include("planner.urls")),
    path("carbon/", include("planner.carbon.urls")),
    path("healthz", views.healthz, name="healthz"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
