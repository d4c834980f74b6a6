"""Projects, who belongs to them, and the one rule for what a user may see; per-user API tokens.

The rule "a user sees the projects they are a member of, and what belongs to them" is written once, on
the querysets here (``Project.objects.for_user`` and ``InProjectQuerySet.for_user``). Every page,
export, API operation, ``/metrics`` scrape, planner and carbon view looks data up through it, so what
a user may see is decided in one place.

A token is shown once when issued; only its SHA-256 hash is stored, so a leaked database does not leak
working credentials. The short prefix lets a person tell their tokens apart in the admin.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models

M = TypeVar("M", bound=models.Model)

Visitor = User | AnonymousUser
"""Who a request comes from (``request.user``): a signed-in user or an anonymous one."""


def signed_in(user: Visitor | None) -> User | None:
    """The user if signed in, else None: who a row records as having created or requested it."""
    return user if isinstance(user, User) else None


class ProjectQuerySet(models.QuerySet["Project"]):
    def for_user(self, user: Visitor | None) -> ProjectQuerySet:
        """The projects ``user`` is a member of: the only ones whose data they may see.

        An anonymous or deactivated user belongs to none.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        return self.filter(members=user)


class InProjectQuerySet(models.QuerySet[M]):
    """Rows that belong to a project: visible to a user exactly when their project is.

    ``project_path`` is the lookup from the row to its project (``"project"``, or
    ``"profile__project"`` for rows that belong to a project through another row).
    """

    project_path: ClassVar[str] = "project"

    def for_user(self, user: Visitor | None) -> InProjectQuerySet[M]:
        return self.filter(**{f"{self.project_path}__in": Project.objects.for_user(user)})


class Project(models.Model):
    name = models.CharField(max_length=100, unique=True)
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="wattwise_projects", blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        db_table = "dashboard_project"  # named before the apps were split (see dashboard.legacy)
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    # Hex SHA-256 of the whole token; tokens are 256 random bits, so an unsalted hash is enough.
    token_sha256 = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="first characters of the token, for recognising it")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "api_apitoken"  # named before the apps were split (see dashboard.legacy)
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.prefix}…)"
