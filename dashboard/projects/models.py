"""Projects, who belongs to them and with what role, and the one rule for what a user may see; per-user
API tokens.

The rule "a user sees the projects they are a member of, and what belongs to them; a superuser sees
every project" is written once, on the querysets here (``Project.objects.for_user`` and
``InProjectQuerySet.for_user``). Every page, export, API operation, ``/metrics`` scrape, planner and
carbon view looks data up through it, so what a user may see is decided in one place. Who may change a
project's members is decided here too (``Project.objects.administered_by``): its admins, and superusers.

A token is shown once when issued; only its SHA-256 hash is stored, so a leaked database does not leak
working credentials. The short prefix lets a person tell their tokens apart in the admin.
"""

from __future__ import annotations

from typing import ClassVar, TypeVar

from django.conf import settings
from django.contrib.auth.models import AnonymousUser, User
from django.db import models
from django.utils import timezone

M = TypeVar("M", bound=models.Model)

Visitor = User | AnonymousUser
"""Who a request comes from (``request.user``): a signed-in user or an anonymous one."""


def signed_in(user: Visitor | None) -> User | None:
    """The user if signed in, else None: who a row records as having created or requested it."""
    return user if isinstance(user, User) else None


class ProjectQuerySet(models.QuerySet["Project"]):
    def for_user(self, user: Visitor | None) -> ProjectQuerySet:
        """The projects whose data ``user`` may see: those they are a member of; every one for a superuser.

        An anonymous or deactivated user sees none.
        """
        if user is None or not user.is_authenticated or not user.is_active:
            return self.none()
        if user.is_superuser:
            return self.all()
        return self.filter(members=user)

    def administered_by(self, user: Visitor | None) -> ProjectQuerySet:
        """The projects whose members ``user`` may add, remove and change the role of: those they are an
        admin of; every one for a superuser (who can so give a project without an admin its first)."""
        visible = self.for_user(user)
        if not isinstance(user, User) or user.is_superuser:
            return visible  # none for anonymous visitors; every project for a superuser
        return visible.filter(memberships__user=user, memberships__role=Membership.Role.ADMIN)


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
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, through="Membership", related_name="wattwise_projects", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    objects = ProjectQuerySet.as_manager()

    class Meta:
        db_table = "dashboard_project"  # named before the apps were split (see dashboard.legacy)
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's place in a project. Members see the project's data; admins also manage its members.

    The table is the one the plain many-to-many ``Project.members`` had (rows kept: they became members).
    """

    class Role(models.TextChoices):
        MEMBER = "member", "member"
        ADMIN = "admin", "admin"

    project = models.ForeignKey(Project, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="wattwise_memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.MEMBER)
    # Null for memberships made before roles were recorded (when they began is not known).
    added_at = models.DateTimeField(null=True, blank=True, default=timezone.now)

    class Meta:
        db_table = "dashboard_project_members"  # the plain many-to-many's table, named before the split
        # unique_together, not a named constraint: it is the one the many-to-many table has, by its name.
        unique_together = [("project", "user")]
        ordering = ["project", "user__username"]

    def __str__(self) -> str:
        return f"{self.user} in {self.project} ({self.role})"

    @property
    def is_admin(self) -> bool:
        return self.role == self.Role.ADMIN


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
