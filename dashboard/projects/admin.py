from django.contrib import admin
from django.http import HttpRequest

from dashboard.projects.models import ApiToken, Membership, Project


class MembershipInline(admin.TabularInline):
    """Members and their roles. The members page (/projects/<id>/members/) does the same for project
    admins, and keeps every project that has an admin from losing its last one."""

    model = Membership
    extra = 0
    autocomplete_fields = ["user"]
    readonly_fields = ["added_at"]


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline]


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued by ``manage.py create_api_token`` (the only time one is visible); here they
    can be seen by prefix and revoked by deleting them."""

    list_display = ("prefix", "name", "user", "created_at", "last_used_at")
    list_filter = ("user",)
    search_fields = ("name", "prefix", "user__username")
    readonly_fields = ("user", "name", "prefix", "token_sha256", "created_at", "last_used_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
