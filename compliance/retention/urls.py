"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import path

from . import apis

urlpatterns = [
    path("retention-policies", apis.RetentionPolicyListCreateApi.as_view()),
    path("retention-policies/preview", apis.RetentionPolicyPreviewApi.as_view()),
    path("retention-policies/<int:pk>", apis.RetentionPolicyRetireApi.as_view()),
    path("legal-holds", apis.LegalHoldListCreateApi.as_view()),
    path("legal-holds/<int:pk>", apis.LegalHoldReleaseApi.as_view()),
    path("profiles/<str:profile_id>/deletion-requests", apis.DeletionRequestCreateApi.as_view()),
    path("profiles/<str:profile_id>/purge-receipts", apis.ProfilePurgeReceiptsApi.as_view()),
    path("deletion-requests/<str:request_id>", apis.DeletionRequestDetailApi.as_view()),
    path("deletion-requests/<str:request_id>/receipt", apis.DeletionReceiptApi.as_view()),
    path("reports/retention", apis.RetentionReportApi.as_view()),
]
