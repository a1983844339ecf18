"""Pages (included by config/urls.py at the site root): the privacy page for end users
under /privacy/, the privacy officers' dashboard and forms under /officer/."""

from django.urls import path

from .views import downloads, language, officer, privacy, reports, webhooks

app_name = "web"

urlpatterns = [
    path("language/", language.switch_language, name="language"),
    path("privacy/", privacy.privacy, name="privacy"),
    path(
        "privacy/profiles/<str:profile_id>/consents/<str:purpose>/",
        privacy.consent_change,
        name="consent",
    ),
    path(
        "privacy/profiles/<str:profile_id>/retention/",
        privacy.retention_change,
        name="retention",
    ),
    path(
        "privacy/profiles/<str:profile_id>/name/",
        privacy.profile_rename_view,
        name="rename",
    ),
    path(
        "privacy/profiles/<str:profile_id>/recordings/",
        privacy.recordings,
        name="recordings",
    ),
    path(
        "privacy/profiles/<str:profile_id>/deletions/",
        privacy.deletion_create,
        name="deletion-create",
    ),
    path("privacy/deletions/<str:public_id>/", privacy.deletion_status, name="deletion"),
    path(
        "privacy/profiles/<str:profile_id>/consents/<str:purpose>/receipt.jws",
        downloads.privacy_consent_receipt,
        name="consent-receipt",
    ),
    path(
        "privacy/profiles/<str:profile_id>/evidence.json",
        downloads.privacy_evidence,
        name="evidence",
    ),
    path(
        "privacy/profiles/<str:profile_id>/purge-receipts.json",
        downloads.privacy_purge_receipts,
        name="purge-receipts",
    ),
    path(
        "privacy/deletions/<str:public_id>/receipt.jws",
        downloads.privacy_deletion_receipt,
        name="deletion-receipt",
    ),
    path("officer/", officer.dashboard, name="officer"),
    path("officer/policies/", officer.policies, name="officer-policies"),
    path("officer/policies/<int:pk>/retire/", officer.policy_retire, name="officer-policy-retire"),
    path("officer/consent-defaults/", officer.consent_defaults, name="officer-consent-defaults"),
    path(
        "officer/consent-defaults/<int:pk>/delete/",
        officer.consent_default_remove,
        name="officer-consent-default-delete",
    ),
    path("officer/transfer-rules/", officer.transfer_rules, name="officer-transfer-rules"),
    path(
        "officer/transfer-rules/<int:pk>/delete/",
        officer.transfer_rule_remove,
        name="officer-transfer-rule-delete",
    ),
    path("officer/holds/", officer.holds, name="officer-holds"),
    path("officer/holds/search/", officer.hold_targets, name="officer-hold-targets"),
    path("officer/holds/<int:pk>/release/", officer.hold_release, name="officer-hold-release"),
    path("officer/ledger/", officer.ledger, name="officer-ledger"),
    path("officer/ledger/verify/", officer.ledger_verify, name="officer-ledger-verify"),
    path(
        "officer/ledger/acknowledge/",
        officer.ledger_acknowledge,
        name="officer-ledger-acknowledge",
    ),
    path("officer/reports/<slug:name>.csv", reports.report, name="officer-report"),
    path("officer/webhooks/", webhooks.webhooks, name="officer-webhooks"),
    path(
        "officer/webhooks/<str:external_id>/replay/",
        webhooks.webhook_replay,
        name="officer-webhook-replay",
    ),
    path(
        "officer/webhooks/<str:external_id>/disable/",
        webhooks.webhook_disable,
        name="officer-webhook-disable",
    ),
    path("officer/evidence/", downloads.officer_evidence, name="officer-evidence"),
    path(
        "officer/profiles/<str:profile_id>/evidence.json",
        downloads.officer_evidence_download,
        name="officer-evidence-download",
    ),
    path(
        "officer/profiles/<str:profile_id>/consents/<str:purpose>/receipt.jws",
        downloads.officer_consent_receipt,
        name="officer-consent-receipt",
    ),
    path(
        "officer/deletions/<str:public_id>/receipt.jws",
        downloads.officer_deletion_receipt,
        name="officer-deletion-receipt",
    ),
]
