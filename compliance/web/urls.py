"""Pages (included by config/urls.py at the site root): the privacy page for end users
under /privacy/, the privacy officers' dashboard and forms under /officer/."""

from django.urls import URLPattern, URLResolver, include, path

from .views import downloads, icon, language, officer, privacy, reports, webhooks

app_name = "web"

# /privacy/profiles/<profile_id>/...: one of the signed-in user's profiles
profile_pages = [
    path("consents/<str:purpose>/", privacy.consent_change, name="consent"),
    path("retention/", privacy.retention_change, name="retention"),
    path("name/", privacy.profile_rename_view, name="rename"),
    path("recordings/", privacy.recordings, name="recordings"),
    path("deletions/", privacy.deletion_create, name="deletion-create"),
    path(
        "consents/<str:purpose>/receipt.jws",
        downloads.privacy_consent_receipt,
        name="consent-receipt",
    ),
    path("evidence.json", downloads.privacy_evidence, name="evidence"),
    path("purge-receipts.json", downloads.privacy_purge_receipts, name="purge-receipts"),
]

privacy_pages: list[URLPattern | URLResolver] = [
    path("", privacy.privacy, name="privacy"),
    path("profiles/<str:profile_id>/", include(profile_pages)),
    path("deletions/<str:public_id>/", privacy.deletion_status, name="deletion"),
    path(
        "deletions/<str:public_id>/receipt.jws",
        downloads.privacy_deletion_receipt,
        name="deletion-receipt",
    ),
]

officer_pages = [
    path("", officer.dashboard, name="officer"),
    path("policies/", officer.policies, name="officer-policies"),
    path("policies/<int:pk>/retire/", officer.policy_retire, name="officer-policy-retire"),
    path("consent-defaults/", officer.consent_defaults, name="officer-consent-defaults"),
    path(
        "consent-defaults/<int:pk>/delete/",
        officer.consent_default_remove,
        name="officer-consent-default-delete",
    ),
    path("transfer-rules/", officer.transfer_rules, name="officer-transfer-rules"),
    path(
        "transfer-rules/<int:pk>/delete/",
        officer.transfer_rule_remove,
        name="officer-transfer-rule-delete",
    ),
    path("holds/", officer.holds, name="officer-holds"),
    path("holds/search/", officer.hold_targets, name="officer-hold-targets"),
    path("holds/<int:pk>/release/", officer.hold_release, name="officer-hold-release"),
    path("ledger/", officer.ledger, name="officer-ledger"),
    path("ledger/verify/", officer.ledger_verify, name="officer-ledger-verify"),
    path("ledger/acknowledge/", officer.ledger_acknowledge, name="officer-ledger-acknowledge"),
    path("reports/<slug:name>.csv", reports.report, name="officer-report"),
    path("webhooks/", webhooks.webhooks, name="officer-webhooks"),
    path(
        "webhooks/<str:external_id>/replay/",
        webhooks.webhook_replay,
        name="officer-webhook-replay",
    ),
    path(
        "webhooks/<str:external_id>/disable/",
        webhooks.webhook_disable,
        name="officer-webhook-disable",
    ),
    path("evidence/", downloads.officer_evidence, name="officer-evidence"),
    path(
        "profiles/<str:profile_id>/evidence.json",
        downloads.officer_evidence_download,
        name="officer-evidence-download",
    ),
    path(
        "profiles/<str:profile_id>/consents/<str:purpose>/receipt.jws",
        downloads.officer_consent_receipt,
        name="officer-consent-receipt",
    ),
    path(
        "deletions/<str:public_id>/receipt.jws",
        downloads.officer_deletion_receipt,
        name="officer-deletion-receipt",
    ),
]

urlpatterns = [
    path("favicon.ico", icon.favicon),
    path("language/", language.switch_language, name="language"),
    path("privacy/", include(privacy_pages)),
    path("officer/", include(officer_pages)),
]
