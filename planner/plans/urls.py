from django.urls import path

from planner.plans import views

app_name = "planner"
urlpatterns = [
    path("", views.index, name="index"),
    path("upload/", views.upload, name="upload"),
    path("sample/", views.sample, name="sample"),
    path("profiles/<int:pk>/", views.profile_detail, name="profile"),
    path("profiles/<int:pk>/profile.csv", views.profile_csv, name="profile_csv"),
    path("frontiers/<int:pk>/", views.frontier_detail, name="frontier"),
    path("frontiers/<int:pk>/status.json", views.frontier_status, name="frontier_status"),
    path("frontiers/<int:pk>/frontier.csv", views.frontier_csv, name="frontier_csv"),
    path("frontiers/<int:pk>/realised.csv", views.frontier_realised_csv, name="frontier_realised_csv"),
    path("frontiers/<int:pk>/frontier.plans.npz", views.frontier_archive, name="frontier_archive"),
    path("frontiers/<int:pk>/plans/<int:k>/", views.plan_detail, name="plan"),
    path("frontiers/<int:pk>/plans/<int:k>/rank-<int:rank>.json", views.plan_rank_json, name="plan_rank"),
    path("frontiers/<int:pk>/plans/<int:k>/plan.json", views.plan_json, name="plan_json"),
    path("frontiers/<int:pk>/plans/<int:k>/plan.csv", views.plan_csv, name="plan_csv"),
    path("frontiers/<int:pk>/plans/<int:k>/ranks.zip", views.plan_zip, name="plan_zip"),
]
