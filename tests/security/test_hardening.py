"""Headers, size limits, CSRF on session writes, API throttles, deployment settings."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from compliance.security.throttling import parse_rate
from tests.factories import ProfileFactory

from .conftest import person, session_client, verified_client

pytestmark = pytest.mark.django_db

REPO = Path(__file__).resolve().parents[2]


# --- headers --------------------------------------------------------------------------


def test_pages_get_a_content_security_policy_with_a_fresh_script_nonce(client):
    first = client.get("/accounts/login/")["Content-Security-Policy"]
    second = client.get("/accounts/login/")["Content-Security-Policy"]

    nonce = re.search(r"'nonce-([^']+)'", first)[1]
    assert "script-src 'self' 'nonce-" in first
    assert "'unsafe-inline'" not in first.split("script-src", 1)[1].split(";")[0]
    assert "frame-ancestors 'none'" in first
    assert "object-src 'none'" in first
    assert nonce not in second


def test_every_answer_carries_the_basic_security_headers(client, platform):
    for response in (client.get("/accounts/login/"), platform.get("/api/v1/transfer-rules")):
        assert response["X-Content-Type-Options"] == "nosniff"
        assert response["Referrer-Policy"] == "same-origin"
        assert response["X-Frame-Options"] == "DENY"
    page = client.get("/accounts/login/")
    assert "microphone=()" in page["Permissions-Policy"]
    assert "camera=()" in page["Permissions-Policy"]


def test_api_answers_are_not_cached_and_run_nothing(platform):
    response = platform.get("/api/v1/transfer-rules")

    assert response["Cache-Control"] == "no-store"
    assert response["Content-Security-Policy"].startswith("default-src 'none'")


def test_the_swagger_ui_keeps_working_under_its_policy(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    html = response.content.decode()
    policy = response["Content-Security-Policy"]
    # its inline bootstrap script is allowed on this page only, and its assets are ours
    assert "<script>" in html
    assert "'unsafe-inline'" in policy.split("script-src", 1)[1].split(";")[0]
    for asset in re.findall(r'(?:src|href)="([^"]+)"', html):
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset
    assert client.get("/api/schema/").status_code == 200


# --- size limits ----------------------------------------------------------------------


def test_an_oversized_api_body_is_a_json_413_before_it_is_read(platform, settings):
    settings.REQUEST_MAX_BYTES = 1000

    response = platform.generic(
        "POST", "/api/v1/accounts", b"x" * 1001, content_type="application/json"
    )

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_an_oversized_page_body_is_a_plain_413(client, settings):
    settings.REQUEST_MAX_BYTES = 1000

    response = client.post("/accounts/login/", {"username": "x" * 2000})

    assert response.status_code == 413
    assert response["Content-Type"].startswith("text/plain")


def test_a_body_within_the_limit_passes(platform, settings):
    settings.REQUEST_MAX_BYTES = 1000

    response = platform.post(
        "/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "DE"}, format="json"
    )

    assert response.status_code == 201


def test_the_default_limit_admits_the_largest_audio_upload(settings):
    assert settings.REQUEST_MAX_BYTES > settings.MAX_AUDIO_BYTES


# --- NUL characters (PostgreSQL refuses them in any text parameter) --------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/recordings/r%00x",
        "/api/v1/profiles/p%00x/consents",
        "/api/v1/eligibility/r%00x?purpose=human_review",
        "/api/v1/deletion-requests/d%00",
        "/api/v1/transfer-rules?include=%00",
    ],
)
def test_a_nul_in_the_path_or_query_is_a_400_not_a_database_error(platform, path):
    response = platform.get(path)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (
            "/api/v1/eligibility/batch",
            {"purpose": "human_review", "recordings": ["r-1", "r\x00x"]},
            "recordings",
        ),
        (
            "/api/v1/legal-holds",
            {"profile": "p\x00", "reason": "r", "case_reference": "c"},
            "profile",
        ),
        (
            "/api/v1/samples",
            {"purpose": "human_review", "size": 1, "jurisdiction\x00": "DE"},
            "jurisdiction\\x00",
        ),
    ],
)
def test_a_nul_anywhere_in_a_json_body_is_a_400_naming_the_field(platform, path, body, field):
    response = platform.post(path, body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == [field]


def test_a_nul_in_a_form_field_is_a_400_naming_the_field(platform):
    response = platform.post("/api/v1/accounts", {"external_id": "a\x00", "jurisdiction": "DE"})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert list(error["fields"]) == ["external_id"]


def test_the_text_backslash_u0000_is_not_a_nul(platform):
    response = platform.post(
        "/api/v1/eligibility/batch",
        {"purpose": "human_review", "recordings": ["r\\u0000x"]},
        format="json",
    )

    assert response.status_code == 200
    assert response.json()["results"][0]["recording"] == "r\\u0000x"


# --- CSRF on session-authenticated writes ----------------------------------------------


def _owner_session(enforce: bool) -> tuple[APIClient, str]:
    user = person("erin")
    profile = ProfileFactory(account__user=user)
    client = APIClient(enforce_csrf_checks=enforce)
    client.force_login(user)
    return client, f"/api/v1/profiles/{profile.external_id}/consents/human_review"


def test_a_session_write_without_the_csrf_token_is_refused():
    client, url = _owner_session(enforce=True)

    response = client.put(url, {"granted": True, "notice_version": "v1"}, format="json")

    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]["message"]


def test_a_session_write_with_the_csrf_token_is_accepted():
    client, url = _owner_session(enforce=True)
    client.get("/accounts/login/")  # the page sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.put(
        url, {"granted": True, "notice_version": "v1"}, format="json", HTTP_X_CSRFTOKEN=token
    )

    assert response.status_code == 200
    assert response.json()["granted"] is True


def test_an_api_key_write_needs_no_csrf_token(api_client_with_scopes):
    client = api_client_with_scopes("accounts:write")
    client.handler.enforce_csrf_checks = True

    response = client.post(
        "/api/v1/accounts", {"external_id": "a-1", "jurisdiction": "DE"}, format="json"
    )

    assert response.status_code == 201


# --- API throttles ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rate", "parsed"), [("20000/min", (20000, 60)), ("5/s", (5, 1)), ("", None), (None, None)]
)
def test_rates_are_read_from_settings(rate, parsed):
    assert parse_rate(rate) == parsed


def _rates(settings, **rates: str) -> None:
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], **rates},
    }


def test_an_api_key_over_its_rate_gets_429_with_retry_after(api_client_with_scopes, settings):
    _rates(settings, client="3/min")
    client = api_client_with_scopes("policies:write")
    other = api_client_with_scopes("policies:write")

    statuses = [client.get("/api/v1/transfer-rules").status_code for _ in range(4)]
    refused = client.get("/api/v1/transfer-rules")

    assert statuses == [200, 200, 200, 429]
    assert refused.json()["error"]["code"] == "throttled"
    assert 0 < int(refused["Retry-After"]) <= 61
    assert other.get("/api/v1/transfer-rules").status_code == 200  # per key


def test_a_signed_in_user_over_their_rate_gets_429(settings):
    _rates(settings, user="2/min")
    user = person("erin")
    profile = ProfileFactory(account__user=user)
    client = session_client(user)
    url = f"/api/v1/profiles/{profile.external_id}/consents"

    statuses = [client.get(url).status_code for _ in range(3)]

    assert statuses == [200, 200, 429]
    assert session_client(person("frank")).get(url).status_code == 404  # per user, and not theirs


def test_refused_requests_do_not_use_up_the_rate(api_client_with_scopes, settings):
    _rates(settings, client="2/min")
    client = api_client_with_scopes("reports:read")

    for _ in range(5):
        assert client.get("/api/v1/transfer-rules").status_code == 403

    assert client.get("/api/v1/reports/retention").status_code == 200


def test_the_default_rates_leave_room_for_the_benchmarks(settings):
    limit, period = parse_rate(settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]["client"])
    assert limit / period >= 300  # per second, per key, per process


def test_verified_officers_are_throttled_as_users(settings, officer):
    _rates(settings, user="1/min")
    client = verified_client(officer.user)

    assert client.get("/api/v1/transfer-rules").status_code == 200
    assert client.get("/api/v1/transfer-rules").status_code == 429


# --- deployment -------------------------------------------------------------------------


def _manage(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 (our own manage.py, fixed arguments)
        [sys.executable, "manage.py", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_deploy_is_clean_under_production_settings():
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "SECRET_KEY": "x" * 20 + "deploy-check-only-" + "y" * 30,
        "ALLOWED_HOSTS": "earshot.example",
    }
    result = _manage(env, "check", "--deploy", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_zero_setup_defaults_pass_the_database_checks_without_a_warning(tmp_path):
    """What `dev.py run` prints before migrating: nothing to worry a new user."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.base",
        "SECRET_KEY": "x" * 50,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'check.sqlite3'}",
    }
    result = _manage(env, "check", "--database", "default", "--fail-level", "WARNING")

    assert result.returncode == 0, result.stdout + result.stderr


def test_production_settings_refuse_to_start_without_a_secret_key():
    env = {k: v for k, v in os.environ.items() if k != "SECRET_KEY"}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings.production"
    result = _manage(env, "check")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
