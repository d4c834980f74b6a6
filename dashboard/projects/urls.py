from django.urls import path

from dashboard.projects import views

app_name = "projects"

urlpatterns = [
    path("", views.projects, name="index"),
    path("<int:pk>/members/", views.members, name="members"),
    path("<int:pk>/members/add", views.add, name="member_add"),
    path("<int:pk>/members/<int:user_pk>/role", views.change_role, name="member_role"),
    path("<int:pk>/members/<int:user_pk>/remove", views.remove, name="member_remove"),
]
