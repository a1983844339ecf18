"""Pages (included by config/urls.py at the site root)."""

from django.urls import URLPattern

urlpatterns: list[URLPattern] = []
