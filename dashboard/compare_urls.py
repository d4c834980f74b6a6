"""Run comparison routes (filled in by the compare work)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
