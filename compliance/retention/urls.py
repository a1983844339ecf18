"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
