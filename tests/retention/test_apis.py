from datetime import timedelta

import pytest
from django.utils import timezone

from compliance.ledger.models import LedgerEntry
from compliance.retention import purge
from compliance.retention.models import LegalHold, RetentionPolicy
from compliance.retention.services import retention_policies_apply
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db


def test_an_officer_tool_creates_lists_and_retires_a_policy(platform):
    response = platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "EU", "category": "audio", "retention_days": 180, "applies_to": "adults"},
        format="json",
    )
    assert response.status_code == 201, response.content
    created = response.json()
    assert (created["version"], created["retired_at"]) == (1, None)
    second = platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "EU", "category": "audio", "retention_days": 90, "applies_to": "adults"},
        format="json",
    ).json()
    assert second["version"] == 2
    assert [p["id"] for p in platform.get("/api/v1/retention-policies").json()] == [
        second["id"],
        created["id"],
    ]

    retired = platform.delete(f"/api/v1/retention-policies/{second['id']}")
    assert retired.status_code == 200
    assert retired.json()["retired_at"] is not None
    assert platform.get("/api/v1/retention-policies").json() == []
    assert LedgerEntry.objects.filter(kind__startswith="retention_policy.").count() == 3


@pytest.mark.parametrize(
    ("body", "code", "field"),
    [
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": -1},
            "validation_error",
            "retention_days",
        ),
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": 10**9},
            "validation_error",
            "retention_days",
        ),
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": 1.5},
            "validation_error",
            "retention_days",
        ),
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": "30"},
            "validation_error",
            "retention_days",
        ),
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": True},
            "validation_error",
            "retention_days",
        ),
        (
            {"jurisdiction": "DE", "category": "video", "retention_days": 30},
            "unknown_category",
            "category",
        ),
        (
            {"jurisdiction": "XX", "category": "audio", "retention_days": 30},
            "unknown_jurisdiction",
            "jurisdiction",
        ),
        (
            {"jurisdiction": "DE", "category": "audio", "retention_days": 30, "applies_to": "pets"},
            "validation_error",
            "applies_to",
        ),
        ({"jurisdiction": "DE", "category": "audio"}, "validation_error", "retention_days"),
        (
            {
                "jurisdiction": "DE",
                "category": "audio",
                "retention_days": 30,
                "effective_from": "2027-01-01T00:00",
            },
            "validation_error",
            "effective_from",
        ),
    ],
)
def test_bad_policies_are_refused_and_write_nothing(platform, body, code, field):
    response = platform.post("/api/v1/retention-policies", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert field in response.json()["error"]["fields"]
    assert not RetentionPolicy.objects.exists()


def test_retiring_an_unknown_policy_is_404(platform):
    assert platform.delete("/api/v1/retention-policies/999").status_code == 404


def test_policies_need_their_scope(api_client_with_scopes):
    reader = api_client_with_scopes("reports:read")
    response = reader.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "DE", "category": "audio", "retention_days": 3},
        format="json",
    )
    assert response.status_code == 403
    assert reader.get("/api/v1/retention-policies").status_code == 403


def test_the_preview_counts_what_a_policy_would_purge(platform, ingest):
    profile = ProfileFactory(account__jurisdiction="DE")
    for days in (10, 40, 50, 200):
        ingest(profile, days_ago=days)
    ingest(ProfileFactory(account__jurisdiction="US"), days_ago=100)
    response = platform.post(
        "/api/v1/retention-policies/preview",
        {"jurisdiction": "EU", "category": "audio", "retention_days": 30},
        format="json",
    )
    assert response.status_code == 200, response.content
    preview = response.json()
    assert preview["in_scope"] == 4
    assert preview["purged_when_effective"] == 3
    assert sum(m["artefacts"] for m in preview["purged_later_by_month"]) == 1
    assert not RetentionPolicy.objects.exists()


def test_holds_are_placed_listed_and_released(platform, ingest):
    profile = ProfileFactory()
    response = platform.post(
        "/api/v1/legal-holds",
        {
            "profile": profile.external_id,
            "from": "2026-01-01T00:00:00Z",
            "reason": "regulator inquiry",
            "case_reference": "REG-42",
        },
        format="json",
    )
    assert response.status_code == 201, response.content
    hold = response.json()
    assert (hold["profile"], hold["account"], hold["from"], hold["to"]) == (
        profile.external_id,
        None,
        "2026-01-01T00:00:00Z",
        None,
    )
    assert [h["id"] for h in platform.get("/api/v1/legal-holds").json()] == [hold["id"]]
    released = platform.delete(f"/api/v1/legal-holds/{hold['id']}")
    assert released.status_code == 200
    assert released.json()["released_at"] is not None
    assert platform.get("/api/v1/legal-holds").json() == []


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"reason": "r", "case_reference": "c"}, "validation_error"),  # neither scope
        (
            {"profile": "P", "account": "A", "reason": "r", "case_reference": "c"},
            "validation_error",
        ),
        (
            {
                "profile": "P",
                "from": "2026-03-01T00:00:00Z",
                "to": "2026-01-01T00:00:00Z",
                "reason": "r",
                "case_reference": "c",
            },
            "invalid_range",
        ),
        (
            {"profile": "P", "from": "soon", "reason": "r", "case_reference": "c"},
            "validation_error",
        ),
        ({"profile": "nobody", "reason": "r", "case_reference": "c"}, "unknown_profile"),
        ({"account": "nobody", "reason": "r", "case_reference": "c"}, "unknown_account"),
        ({"profile": "P", "reason": "", "case_reference": "c"}, "validation_error"),
        ({"profile": "P", "case_reference": "c"}, "validation_error"),
        ({"profile": "P", "reason": "r", "case_reference": "CASE\u202e-1"}, "validation_error"),
        ({"profile": "P", "reason": "r", "case_reference": "CASE\n2"}, "validation_error"),
    ],
)
def test_bad_holds_are_refused_and_write_nothing(platform, body, code):
    profile = ProfileFactory(external_id="P", account__external_id="A")
    assert profile
    response = platform.post("/api/v1/legal-holds", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code
    assert not LegalHold.objects.exists()


def test_a_case_reference_with_a_no_break_space_is_one_printable_line(platform):
    ProfileFactory(external_id="P")
    body = {"profile": "P", "reason": "r", "case_reference": "AZ\u00a012/2026"}

    response = platform.post("/api/v1/legal-holds", body, format="json")

    assert response.status_code == 201, response.content
    assert response.json()["case_reference"] == "AZ\u00a012/2026"


@pytest.mark.parametrize("field", ["from", "to"])
def test_a_forms_empty_range_end_is_refused_not_read_as_no_bound(platform, field):
    ProfileFactory(external_id="P")
    body = {"profile": "P", "reason": "r", "case_reference": "c", field: ""}

    response = platform.post("/api/v1/legal-holds", body, format="multipart")

    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not LegalHold.objects.exists()


def test_the_retention_report_shows_overdue_lag_and_gaps(api_client_with_scopes, ingest, platform):
    ProfileFactory(account__jurisdiction="FR")
    platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "*", "category": "audio", "retention_days": 10},
        format="json",
    )
    retention_policies_apply()
    ingest(days_ago=11)
    reporter = api_client_with_scopes("reports:read")

    report = reporter.get("/api/v1/reports/retention").json()
    assert report["overdue_artefacts"] == 1
    assert report["purge_lag"]["oldest_overdue_seconds"] >= 86_400
    gaps = {(g["jurisdiction"], g["category"]) for g in report["policy_gaps"]}
    assert ("FR", "transcript") in gaps
    assert ("FR", "audio") not in gaps

    purge.purge_expired()
    report = reporter.get("/api/v1/reports/retention").json()
    assert report["overdue_artefacts"] == 0
    assert report["purge_lag"]["purged"] == 1
    assert report["purge_lag"]["max_seconds"] >= 86_400
    assert report["purges_per_day"][-1]["artefacts"] == 1


def test_a_recording_past_retention_is_not_eligible(api_client_with_scopes, ingest, platform):
    from compliance.actions.consent import consent_set

    recording = ingest(days_ago=20)
    consent_set(
        profile=recording.profile,
        purpose="human_review",
        granted=True,
        channel="api",
        notice_version="1",
        actor="t",
    )
    asker = api_client_with_scopes("eligibility:read")
    url = f"/api/v1/eligibility/{recording.external_id}?purpose=human_review"
    assert asker.get(url).json()["eligible"] is True
    platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "*", "category": "audio", "retention_days": 10},
        format="json",
    )
    retention_policies_apply()
    assert asker.get(url).json()["reasons"] == ["retention_expired"]
    purge.purge_expired()
    assert asker.get(url).json()["reasons"] == [
        "retention_expired"
    ]  # the audio is gone, the rest stays
    assert timezone.now() - timedelta(days=20) < recording.recorded_at + timedelta(minutes=1)


def test_metrics_expose_overdue_artefacts_and_purge_lag(client, ingest, platform):
    platform.post(
        "/api/v1/retention-policies",
        {"jurisdiction": "*", "category": "audio", "retention_days": 10},
        format="json",
    )
    retention_policies_apply()
    ingest(days_ago=12)
    body = client.get("/metrics").content.decode()
    assert "earshot_overdue_artefacts 1.0" in body
    purge.purge_expired()
    body = client.get("/metrics").content.decode()
    assert "earshot_overdue_artefacts 0.0" in body
    lag = next(
        line for line in body.splitlines() if line.startswith("earshot_purge_lag_max_seconds")
    )
    assert float(lag.split()[1]) >= 2 * 86_400
