"""Input at the edges: NUL characters and lone surrogates in every part of a request,
dates at the ends of the calendar, strings posing as booleans. Each gets a 4xx with a
code (a cookie: the request is served as signed out), never a 500."""

import json
from typing import Any

import pytest
from django.test import Client
from rest_framework.test import APIClient

from compliance.consent.models import ConsentEvent
from compliance.retention.models import DeletionRequest, LegalHold, RetentionPolicy
from tests.web.conftest import Household, make_household, make_officer, verify_session


@pytest.fixture
def home(db) -> Household:
    return make_household()


@pytest.fixture
def owner(home: Household) -> Client:
    client = Client()
    client.force_login(home.user)
    return client


@pytest.fixture
def officer_page(db) -> Client:
    user, device = make_officer()
    client = Client()
    client.force_login(user)
    verify_session(client, device)
    return client


def _error(response: Any) -> dict[str, Any]:
    body = json.loads(response.content)
    assert set(body) == {"error"}
    assert body["error"]["code"]
    return body["error"]


# --- cookies and headers ------------------------------------------------------------


@pytest.mark.parametrize("path", ["/privacy/", "/officer/", "/", "/api/v1/accounts"])
def test_a_session_cookie_with_a_nul_is_served_as_signed_out(db, path):
    client = Client()
    client.cookies["sessionid"] = "abc\x00defghijk"

    response = client.get(path)

    assert response.status_code in (200, 302, 401, 403, 405)


def test_a_quoted_octal_nul_in_the_cookie_header_is_served_as_signed_out(db):
    response = Client().get("/privacy/", HTTP_COOKIE='sessionid="abc\\000defghijk"; csrftoken=x')

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_nul_cookie_beside_a_real_session_keeps_the_session(owner):
    owner.cookies["theme"] = "dark\x00"

    assert owner.get("/privacy/").status_code == 200


def test_a_nul_in_the_csrf_cookie_is_refused_as_a_csrf_failure_not_a_500(db):
    client = APIClient(enforce_csrf_checks=True)
    client.cookies["csrftoken"] = "a\x00b"

    assert client.post("/accounts/login/", {"username": "x", "password": "y"}).status_code == 403


@pytest.mark.parametrize("header", ["HTTP_X_FORWARDED_FOR", "HTTP_IDEMPOTENCY_KEY", "HTTP_ACCEPT"])
def test_a_nul_in_a_header_is_a_400(db, header):
    response = APIClient().get("/api/v1/profiles/p/consents", **{header: "Api-Key a\x00b"})

    assert response.status_code == 400
    assert _error(response)["code"] == "malformed_request"


@pytest.mark.parametrize(
    "path", ["/api/v1/profiles/p/consents", "/api/v1/eligibility/r-1?purpose=human_review"]
)
def test_a_nul_in_the_api_key_is_a_401(db, path):
    response = APIClient().get(path, HTTP_AUTHORIZATION="Api-Key esk_a\x00b")

    assert response.status_code == 401
    assert _error(response)["code"] == "authentication_failed"


# --- lone surrogates in JSON --------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/eligibility/batch",
            b'{"purpose": "human_review", "recordings": ["x\\udfff"]}',
            "recordings",
        ),
        (
            "/api/v1/eligibility/batch",
            b'{"purpose": "human_review", "recordings": ["a"], "reviewer_location": "\\uD800"}',
            "reviewer_location",
        ),
        (
            "/api/v1/samples",
            b'{"purpose": "human_review", "size": 1, "reviewer_location": "x\\udfff"}',
            "reviewer_location",
        ),
        ("/api/v1/samples", b'{"purpose": "human_review", "size": 1, "\\udfff": 1}', "\\udfff"),
        ("/api/v1/accounts", b'{"external_id": "\\ud800", "jurisdiction": "US"}', "external_id"),
    ],
)
def test_a_lone_surrogate_in_a_json_body_is_a_400_naming_the_field(platform, path, body, field):
    response = platform.post(path, body, content_type="application/json")

    assert response.status_code == 400
    error = _error(response)
    assert error["code"] == "validation_error"
    assert field in error["fields"]


def test_a_surrogate_pair_is_an_ordinary_character(platform):
    response = platform.post(
        "/api/v1/eligibility/batch",
        b'{"purpose": "human_review", "recordings": ["clip-\\ud83c\\udfb5"]}',
        content_type="application/json",
    )

    assert response.status_code == 200
    assert response.json()["results"][0]["recording"] == "clip-\N{MUSICAL NOTE}"


# --- dates at the ends of the calendar ----------------------------------------------

EDGE_TIMES = ["9999-12-31T00:00:00Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z"]


@pytest.mark.parametrize("when", EDGE_TIMES)
@pytest.mark.parametrize(
    "path", ["/api/v1/retention-policies/preview", "/api/v1/retention-policies"]
)
def test_a_policy_effective_at_the_calendar_edge_is_a_400(platform, path, when):
    body = {
        "jurisdiction": "US",
        "category": "audio",
        "retention_days": 30,
        "effective_from": when,
    }

    response = platform.post(path, body, format="json")

    assert response.status_code == 400
    assert "effective_from" in _error(response)["fields"]
    assert not RetentionPolicy.objects.exists()


@pytest.mark.parametrize("when", EDGE_TIMES)
def test_edge_times_elsewhere_in_the_api_are_400s(platform, home, when):
    profile = home.adult.external_id
    answers = [
        platform.post(f"/api/v1/profiles/{profile}/deletion-requests", {"to": when}, format="json"),
        platform.post(
            "/api/v1/legal-holds",
            {"profile": profile, "to": when, "reason": "r", "case_reference": "c"},
            format="json",
        ),
        platform.post(
            "/api/v1/samples",
            {"purpose": "human_review", "size": 1, "reviewer_location": "US", "recorded_to": when},
            format="json",
        ),
        platform.post(
            "/api/v1/recordings",
            {"external_id": "r-edge", "profile": profile, "recorded_at": when},
            format="json",
        ),
    ]

    assert [a.status_code for a in answers] == [400] * len(answers)
    assert not DeletionRequest.objects.exists()
    assert not LegalHold.objects.exists()


def test_the_bounds_themselves_are_accepted(platform):
    body = {"jurisdiction": "US", "category": "audio", "retention_days": 30}

    late = platform.post(
        "/api/v1/retention-policies/preview",
        {**body, "effective_from": "9000-12-31T23:59:59Z"},
        format="json",
    )
    early = platform.post(
        "/api/v1/retention-policies/preview",
        {**body, "effective_from": "1970-01-01T00:00:00Z"},
        format="json",
    )

    assert (late.status_code, early.status_code) == (200, 200)


@pytest.mark.parametrize("when", ["9999-12-31T00:00", "0001-01-01T00:00"])
@pytest.mark.parametrize("action", ["preview", "create"])
def test_the_officer_policy_form_refuses_edge_times(officer_page, when, action):
    form = {
        "jurisdiction": "US",
        "category": "audio",
        "applies_to": "all",
        "retention_days": "30",
        "effective_from": when,
        "action": action,
    }

    response = officer_page.post("/officer/policies/", form)

    assert response.status_code == 400
    assert "Must lie between the years" in response.content.decode()
    assert not RetentionPolicy.objects.exists()


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01"])
def test_the_officer_hold_form_refuses_edge_days(officer_page, home, day):
    form = {
        "scope": "account",
        "target": "acct-alice",
        "date_from": "2026-01-01",
        "date_to": day,
        "case_reference": "C-1",
        "reason": "r",
    }

    response = officer_page.post("/officer/holds/", form)

    assert response.status_code == 400
    assert not LegalHold.objects.exists()


@pytest.mark.parametrize(
    "dates",
    [
        {"date_to": "9999-12-31"},
        {"date_from": "9999-12-31"},
        {"date_from": "0001-01-01", "date_to": "2026-01-01"},
    ],
)
def test_the_privacy_range_deletion_refuses_edge_days(owner, home, dates):
    response = owner.post(
        f"/privacy/profiles/{home.adult.external_id}/deletions/",
        {"scope": "range", "confirm": "on", **dates},
    )

    assert response.status_code == 400
    assert "Must lie between the years" in response.content.decode()
    assert not DeletionRequest.objects.exists()


# --- booleans are JSON booleans -----------------------------------------------------


@pytest.mark.parametrize("value", ["true", "false", 1, 0, "yes", None, [], {}])
def test_a_consent_granted_that_is_not_a_json_boolean_is_a_400(platform, home, value):
    url = f"/api/v1/profiles/{home.adult.external_id}/consents/model_training"
    before = ConsentEvent.objects.count()

    response = platform.put(
        url, {"granted": value, "channel": "api", "notice_version": "v1"}, format="json"
    )

    assert response.status_code == 400
    assert "granted" in _error(response)["fields"]
    assert ConsentEvent.objects.count() == before


@pytest.mark.parametrize("value", ["true", "on", 1])
def test_a_consent_default_granted_must_be_a_json_boolean(platform, value):
    response = platform.post(
        "/api/v1/consent-defaults",
        {"jurisdiction": "US", "purpose": "model_training", "granted": value},
        format="json",
    )

    assert response.status_code == 400
    assert "granted" in _error(response)["fields"]


def test_is_child_must_be_a_json_boolean(platform):
    platform.post("/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "US"}, format="json")

    response = platform.post(
        "/api/v1/profiles",
        {"external_id": "p-1", "account": "a-1", "is_child": "false"},
        format="json",
    )

    assert response.status_code == 400
    assert "is_child" in _error(response)["fields"]


def test_flags_as_an_object_must_hold_json_booleans(platform, home):
    response = platform.post(
        "/api/v1/recordings",
        {
            "external_id": "r-flags",
            "profile": home.adult.external_id,
            "recorded_at": "2026-01-01T00:00:00Z",
            "flags": {"sensitive": "true"},
        },
        format="json",
    )

    assert response.status_code == 400
    assert "flags" in _error(response)["fields"]


def test_a_form_body_keeps_its_own_spelling_of_booleans(platform, home):
    url = f"/api/v1/profiles/{home.adult.external_id}/consents/model_training"

    response = platform.put(
        url, {"granted": "true", "channel": "api", "notice_version": "v1"}, format="multipart"
    )

    assert response.status_code == 200
    assert response.json()["granted"] is True


# --- ids become URL segments ---------------------------------------------------------


@pytest.mark.parametrize(
    "external_id", ["../../etc/passwd", "a/b", ".", "..", "tab\there", "x\x7f"]
)
def test_an_id_that_cannot_be_a_url_segment_is_refused(platform, home, external_id):
    account = platform.post(
        "/api/v1/accounts", {"external_id": external_id, "jurisdiction": "US"}, format="json"
    )
    profile = platform.post(
        "/api/v1/profiles",
        {"external_id": external_id, "account": "acct-alice", "is_child": False},
        format="json",
    )
    recording = platform.post(
        "/api/v1/recordings",
        {
            "external_id": external_id,
            "profile": home.adult.external_id,
            "recorded_at": "2026-01-01T00:00:00Z",
        },
        format="json",
    )

    for answer in (account, profile, recording):
        assert answer.status_code == 400
        assert "external_id" in _error(answer)["fields"]


def test_the_privacy_page_shows_profiles_with_unusual_but_valid_ids(platform, owner):
    response = platform.post(
        "/api/v1/profiles",
        {"external_id": "kid ü 🎙️ ?#%", "account": "acct-alice", "is_child": True},
        format="json",
    )

    assert response.status_code == 201
    page = owner.get("/privacy/")
    assert page.status_code == 200
    assert (
        owner.get(
            "/privacy/profiles/kid%20%C3%BC%20%F0%9F%8E%99%EF%B8%8F%20%3F%23%25/recordings/"
        ).status_code
        == 200
    )


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-16"])
@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/eligibility/batch", '{"purpose": "human_review", "recordings": ["x\\udfff"]}'),
        (
            "/api/v1/samples",
            '{"purpose": "human_review", "size": 1, "reviewer_location": "US", '
            '"reviewer": "\\udfff"}',
        ),
    ],
)
def test_a_utf16_body_cannot_hide_a_lone_surrogate(platform, path, body, content_type):
    response = platform.post(path, body.encode("utf-16"), content_type=content_type)

    assert 400 <= response.status_code < 500
    assert _error(response)["code"]


@pytest.mark.parametrize(
    "path", ["/api/v1/eligibility/batch", "/api/v1/samples", "/api/v1/recordings/batch"]
)
def test_utf8_declared_as_utf16_cannot_hide_a_lone_surrogate(platform, path):
    """The charset parameter lies: DRF would decode by it, json.loads by the bytes (found
    by bench/fuzz.py: the eligibility batch answered 500)."""
    body = b'{"purpose": "human_review", "recordings": ["null", "\\ud83d"], "size": 1}'

    response = platform.post(path, body, content_type="application/json; charset=utf-16")

    assert 400 <= response.status_code < 500
    assert _error(response)["code"]


@pytest.mark.parametrize(
    "body",
    [
        b'{"purpose": "human_review", "recordings": ["\xed\xbf\xbf\xf0\x9f\x98\x80"]}',
        '{"purpose": "human_review", "recordings": ["x\udfff"]}'.encode("utf-16", "surrogatepass"),
    ],
    ids=["utf-8 bytes of a surrogate", "utf-16 lone code unit"],
)
def test_raw_surrogate_bytes_in_a_batch_are_a_400(platform, body):
    """json.loads decodes bytes with "surrogatepass": raw surrogate bytes would reach
    the query as a lone surrogate."""
    response = platform.post("/api/v1/eligibility/batch", body, content_type="application/json")

    assert response.status_code == 400
    assert _error(response)["code"] == "validation_error"


def test_korean_text_is_not_mistaken_for_a_surrogate(platform):
    response = platform.post(
        "/api/v1/eligibility/batch",
        '{"purpose": "human_review", "recordings": ["녹음-\ud7a3"]}'.encode(),
        content_type="application/json",
    )

    assert response.status_code == 200
