"""Per-user API tokens.

A token is shown once when issued; only its SHA-256 hash is stored, so a leaked database does not leak
working credentials. The short prefix lets a person tell their tokens apart in the admin.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ApiToken(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100, default="default")
    # Hex SHA-256 of the whole token; tokens are 256 random bits, so an unsalted hash is enough.
    token_sha256 = models.CharField(max_length=64, unique=True)
    prefix = models.CharField(max_length=12, help_text="first characters of the token, for recognising it")
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API token"

    def __str__(self) -> str:
        return f"{self.user} / {self.name} ({self.prefix}…)"
