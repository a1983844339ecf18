"""Paths under /api/v1/ (included by config/urls.py)."""

from django.urls import URLPattern, path

from . import accounts, consent, recordings, retention

urlpatterns: list[URLPattern] = [
    path("accounts", accounts.AccountCreateApi.as_view()),
    path("profiles", accounts.ProfileCreateApi.as_view()),
    path("profiles/<str:profile_id>/retention", accounts.ProfileRetentionApi.as_view()),
    path("profiles/<str:profile_id>/consents", consent.ConsentListApi.as_view()),
    path("profiles/<str:profile_id>/consents/<str:purpose>", consent.ConsentDetailApi.as_view()),
    path(
        "profiles/<str:profile_id>/consents/<str:purpose>/history",
        consent.ConsentHistoryApi.as_view(),
    ),
    path(
        "profiles/<str:profile_id>/consents/<str:purpose>/receipt",
        consent.ConsentReceiptApi.as_view(),
    ),
    path("profiles/<str:profile_id>/evidence", consent.ProfileEvidenceApi.as_view()),
    path("consent-defaults", consent.ConsentDefaultListCreateApi.as_view()),
    path("consent-defaults/<int:pk>", consent.ConsentDefaultDeleteApi.as_view()),
    # "recordings" (the single POST) is among config/urls.py's hot paths
    path("recordings/batch", recordings.RecordingBatchApi.as_view()),
    path("recordings/<str:recording_id>", recordings.RecordingDetailApi.as_view()),
    path("retention-policies", retention.RetentionPolicyListCreateApi.as_view()),
    path("retention-policies/preview", retention.RetentionPolicyPreviewApi.as_view()),
    path("retention-policies/<int:pk>", retention.RetentionPolicyRetireApi.as_view()),
    path("legal-holds", retention.LegalHoldListCreateApi.as_view()),
    path("legal-holds/<int:pk>", retention.LegalHoldReleaseApi.as_view()),
    path(
        "profiles/<str:profile_id>/deletion-requests",
        retention.DeletionRequestCreateApi.as_view(),
    ),
    path("profiles/<str:profile_id>/purge-receipts", retention.ProfilePurgeReceiptsApi.as_view()),
    path("deletion-requests/<str:request_id>", retention.DeletionRequestDetailApi.as_view()),
    path("deletion-requests/<str:request_id>/receipt", retention.DeletionReceiptApi.as_view()),
    path("reports/retention", retention.RetentionReportApi.as_view()),
]
