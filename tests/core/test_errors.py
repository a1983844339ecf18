import pytest
from django.http import Http404
from rest_framework import exceptions
from rest_framework.test import APIClient

from compliance.accounts import services as account_services
from compliance.accounts.models import Account
from compliance.core.errors import (
    ApplicationError,
    Conflict,
    FieldError,
    Gone,
    NotFound,
    Unprocessable,
    api_exception_handler,
    field_error,
)
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Recording
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

# Every endpoint that takes a body, with a body it would accept.
WRITES = [
    ("post", "/api/v1/accounts"),
    ("post", "/api/v1/profiles"),
    ("put", "/api/v1/profiles/p-1/consents/human_review"),
    ("put", "/api/v1/profiles/p-1/retention"),
    ("post", "/api/v1/consent-defaults"),
    ("post", "/api/v1/transfer-rules"),
    ("post", "/api/v1/recordings"),
]


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1")


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    assert error["code"] == code
    assert error["message"]
    return error


# --- unknown paths and methods ----------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/api/nothing", "/api/v1/nothing", "/api/v2/accounts", "/api/v1/accounts/"]
)
@pytest.mark.parametrize("method", ["get", "post", "delete"])
def test_an_unknown_api_path_is_a_404_json_error(platform, path, method):
    response = getattr(platform, method)(path)

    _assert_error(response, 404, "not_found")


def test_an_unknown_api_path_is_404_even_without_credentials(client):
    _assert_error(client.get("/api/v1/nothing"), 404, "not_found")


def test_an_unknown_page_outside_the_api_is_not_json(client):
    response = client.get("/no-such-page")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/accounts"),
        ("put", "/api/v1/profiles"),
        ("delete", "/api/v1/recordings"),
        ("post", "/api/v1/profiles/p-1/consents"),
        ("patch", "/api/v1/transfer-rules"),
    ],
)
def test_a_method_an_endpoint_lacks_is_405(platform, profile, method, path):
    _assert_error(getattr(platform, method)(path), 405, "method_not_allowed")


# --- bodies a hostile client sends ------------------------------------------------------


@pytest.mark.parametrize("body", ["[]", '[{"external_id": "a"}]', "5", "null", "true", '"text"'])
@pytest.mark.parametrize(("method", "path"), WRITES)
def test_a_json_body_that_is_not_an_object_is_400(platform, profile, method, path, body):
    entries = LedgerEntry.objects.count()

    response = getattr(platform, method)(path, body, content_type="application/json")

    _assert_error(response, 400, "validation_error")
    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(("method", "path"), WRITES)
def test_malformed_json_is_400(platform, profile, method, path):
    response = getattr(platform, method)(path, '{"a": ', content_type="application/json")

    _assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(
    "body",
    [
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        '{"external_id": ' + "[" * 5_000 + "]" * 5_000 + ', "jurisdiction": "DE"}',
    ],
    ids=["array", "object", "field"],
)
def test_json_nested_too_deeply_is_400_not_500(platform, body):
    response = platform.post("/api/v1/accounts", body, content_type="application/json")

    _assert_error(response, 400, "malformed_request")
    assert not Account.objects.exists()


@pytest.mark.parametrize("body", ["NaN", '{"external_id": Infinity}'])
def test_non_standard_json_numbers_are_400(platform, body):
    response = platform.post("/api/v1/accounts", body, content_type="application/json")

    _assert_error(response, 400, "malformed_request")


def test_a_body_that_is_not_utf8_is_400(platform):
    response = platform.post("/api/v1/accounts", b"\xff\xfe{}", content_type="application/json")

    _assert_error(response, 400, "malformed_request")


@pytest.mark.parametrize(("method", "path"), WRITES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml", "image/png"])
def test_a_content_type_the_api_does_not_speak_is_415(
    platform, profile, method, path, content_type
):
    response = getattr(platform, method)(path, '{"a": 1}', content_type=content_type)

    _assert_error(response, 415, "unsupported_media_type")


def test_a_json_body_over_the_memory_limit_is_413(platform, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000
    body = '{"external_id": "%s", "jurisdiction": "DE"}' % ("x" * 20_000)

    response = platform.post("/api/v1/accounts", body, content_type="application/json")

    _assert_error(response, 413, "payload_too_large")
    assert not Account.objects.exists()


def test_a_form_field_over_the_memory_limit_is_413(platform, profile, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 10_000

    response = platform.post(
        "/api/v1/recordings",
        {
            "external_id": "r-1",
            "profile": "p-1",
            "recorded_at": "2026-01-01T00:00:00Z",
            "transcript": "x" * 20_000,
        },
        format="multipart",
    )

    _assert_error(response, 413, "payload_too_large")
    assert not Recording.objects.exists()


def test_too_many_form_fields_is_a_4xx_json_error(platform, settings):
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 10
    form = {f"f{i}": "x" for i in range(20)}

    response = platform.post("/api/v1/recordings", form, format="multipart")

    _assert_error(response, 400, "bad_request")


def test_a_broken_multipart_body_is_400(platform):
    response = platform.post(
        "/api/v1/recordings",
        b"--nope\r\nContent-Disposition: form-data\r\n\r\n",
        content_type="multipart/form-data; boundary=",
    )

    _assert_error(response, 400, "malformed_request")


# --- failures of our own ----------------------------------------------------------------


def test_an_unexpected_failure_is_a_500_json_error_and_writes_nothing(platform, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(account_services, "ledger_append", broken)
    platform.raise_request_exception = False

    response = platform.post(
        "/api/v1/accounts", {"external_id": "a", "jurisdiction": "DE"}, format="json"
    )

    error = _assert_error(response, 500, "server_error")
    assert "boom" not in error["message"]
    assert not Account.objects.exists()


# --- the handler itself -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("exc", "status", "body"),
    [
        (
            Unprocessable(
                "child_profile", "No.", fields=field_error("granted", "child_profile", "Never.")
            ),
            422,
            {
                "code": "child_profile",
                "message": "No.",
                "fields": {"granted": [{"code": "child_profile", "message": "Never."}]},
            },
        ),
        (Gone("expired", "Gone."), 410, {"code": "expired", "message": "Gone.", "fields": {}}),
        (
            Conflict("duplicate", "Exists."),
            409,
            {"code": "duplicate", "message": "Exists.", "fields": {}},
        ),
        (
            NotFound("Profile"),
            404,
            {"code": "not_found", "message": "Profile not found.", "fields": {}},
        ),
        (Http404(), 404, None),
        (exceptions.ValidationError(["one", "two"]), 400, None),
        (
            exceptions.ValidationError({"non_field_errors": ["both"], "a": ["bad"]}),
            400,
            {
                "code": "validation_error",
                "message": "both",
                "fields": {"a": [{"code": "invalid", "message": "bad"}]},
            },
        ),
    ],
)
def test_the_handler_renders_every_error_in_one_shape(exc, status, body):
    response = api_exception_handler(exc, {})

    assert response.status_code == status
    error = response.data["error"]
    assert set(error) == {"code", "message", "fields"}
    if body is not None:
        assert error == body


def test_the_handler_leaves_other_exceptions_to_django():
    assert api_exception_handler(RuntimeError("x"), {}) is None
    assert api_exception_handler(RecursionError("not while parsing"), {}) is None


def test_a_client_error_from_an_anonymous_caller_is_json(client):
    response = APIClient().post("/api/v1/accounts", "[", content_type="application/json")

    _assert_error(response, 401, "not_authenticated")


# --- the envelope's fields: a code for machines, a message for people ---------------------


def test_a_drf_validation_error_names_each_field_with_drfs_code_and_its_sentence(platform):
    response = platform.post("/api/v1/accounts", {"jurisdiction": "DE"}, format="json")

    error = _assert_error(response, 400, "validation_error")
    assert error["fields"] == {
        "external_id": [{"code": "required", "message": "This field is required."}]
    }


def test_a_nested_validation_error_is_named_by_its_path():
    exc = exceptions.ValidationError(
        {"recordings": [{}, {"profile": [exceptions.ErrorDetail("Bad.", code="blank")]}]}
    )

    error = api_exception_handler(exc, {}).data["error"]

    assert error["fields"] == {"recordings.1.profile": [{"code": "blank", "message": "Bad."}]}


def test_an_application_error_with_fields_answers_codes_and_sentences(platform):
    ProfileFactory(external_id="child-1", is_child=True)

    response = platform.put(
        "/api/v1/profiles/child-1/consents/human_review",
        {"granted": True, "channel": "app", "notice_version": "v1"},
        format="json",
    )

    error = _assert_error(response, 422, "child_profile")
    assert error["fields"] == {
        "granted": [
            {
                "code": "child_profile",
                "message": "A child's profile can never be granted human review.",
            }
        ]
    }


def test_a_field_problem_must_be_a_field_error_not_a_bare_string():
    with pytest.raises(TypeError):
        ApplicationError("x", "X.", fields={"a": ["unknown"]})  # type: ignore[list-item]
    assert ApplicationError("x", "X.", fields={"a": [FieldError("unknown", "No.")]}).fields
