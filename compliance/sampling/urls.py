"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import URLPattern, path

from .apis import (
    ConsentReportApi,
    ProfileReviewsApi,
    ReviewItemAnnotationApi,
    ReviewItemAudioApi,
    SampleDrawApi,
)

urlpatterns: list[URLPattern] = [
    path("samples", SampleDrawApi.as_view()),
    path("review-items/<str:item_id>/audio", ReviewItemAudioApi.as_view()),
    path("review-items/<str:item_id>/annotations", ReviewItemAnnotationApi.as_view()),
    path("profiles/<str:profile_id>/reviews", ProfileReviewsApi.as_view()),
    path("reports/consent", ConsentReportApi.as_view()),
]
