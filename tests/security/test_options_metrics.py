"""OPTIONS answers what a path allows, the same to anyone (405 with Allow, never a 403);
/metrics can require a bearer token."""

import pytest
from rest_framework.test import APIClient

from compliance.consent.models import ConsentEvent

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/api/v1/accounts", {"POST"}),
        ("/api/v1/profiles/p-1/consents/human_review", {"GET", "PUT"}),
        ("/api/v1/retention-policies", {"GET", "POST"}),
        ("/api/v1/eligibility/batch", {"POST"}),
        ("/api/v1/eligibility/r-1", {"GET"}),
        ("/api/v1/review-items/i-1/audio", {"GET"}),
    ],
)
@pytest.mark.parametrize("who", ["key", "anonymous"])
def test_options_answers_the_allowed_methods_with_or_without_a_key(platform, path, allowed, who):
    client = platform if who == "key" else APIClient()

    response = client.options(path)

    assert response.status_code == 405
    assert set(response["Allow"].split(", ")) == allowed
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_options_with_a_key_lacking_every_scope_is_not_a_403(api_client_with_scopes):
    assert api_client_with_scopes().options("/api/v1/samples").status_code == 405


def test_options_changes_nothing_and_runs_no_view(platform):
    platform.options("/api/v1/profiles/p-1/consents/human_review", {"granted": True})

    assert not ConsentEvent.objects.exists()


def test_options_on_an_unknown_api_path_is_a_404(platform):
    assert platform.options("/api/v1/nothing-here").status_code == 404


def test_metrics_are_open_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""

    assert client.get("/metrics").status_code == 200


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong", "Bearer s3cret-metrics-token-x", "s3cret-metrics-token", "Basic abc"],
)
def test_metrics_with_a_token_refuse_anything_but_it(client, settings, header):
    settings.METRICS_TOKEN = "s3cret-metrics-token"
    extra = {"HTTP_AUTHORIZATION": header} if header else {}

    response = client.get("/metrics", **extra)

    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Bearer")
    assert b"earshot_" not in response.content


def test_metrics_with_the_token_answer(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"

    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer s3cret-metrics-token")

    assert response.status_code == 200
    assert b"earshot_" in response.content


def test_a_non_ascii_bearer_is_a_401_not_a_500(client, settings):
    settings.METRICS_TOKEN = "s3cret-metrics-token"

    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer \u00e9\u00e9").status_code == 401
