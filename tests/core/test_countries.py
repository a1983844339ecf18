"""Every place that takes a country code refuses a bad one exactly as it always has:
code, message, `fields` and status are part of the API (docs/domain.md), byte for byte.

The sites fall into three wordings, kept apart on purpose:
- account, consent default, transfer rule: the value's repr;
- sampling (draw, reviewer): a fixed sentence, repeated as the field's message;
- eligibility: a sentence naming the parameter.
Every field's problem is the code `unknown` with a sentence (docs/domain.md, "Errors").
"""

from typing import Any

import pytest

from compliance.accounts.services import account_create
from compliance.consent.services import consent_default_create
from compliance.core.countries import COUNTRY_FIELD_MESSAGE, require_country
from compliance.core.errors import ApplicationError, FieldError
from compliance.sampling.services import reviewer_create
from compliance.transfers.services import transfer_rule_create
from tests.factories import RecordingFactory, UserFactory

pytestmark = pytest.mark.django_db

NEEDED = "An ISO 3166-1 alpha-2 country code is needed."
UNKNOWN = FieldError("unknown", COUNTRY_FIELD_MESSAGE)


def _error(code: str, message: str, fields: dict[str, list[str]]) -> dict[str, Any]:
    """`fields` as {field: [message]}: each problem's code is `unknown`."""
    return {
        "error": {
            "code": code,
            "message": message,
            "fields": {
                name: [{"code": "unknown", "message": m} for m in problems]
                for name, problems in fields.items()
            },
        }
    }


def _unknown(value: str, field: str, code: str) -> dict[str, Any]:
    return _error(
        code,
        f"{value!r} is not an ISO 3166-1 alpha-2 country code.",
        {field: [COUNTRY_FIELD_MESSAGE]},
    )


@pytest.mark.parametrize("bad", ["XX", "de"])
@pytest.mark.parametrize(
    ("method", "url", "body", "expected"),
    [
        (
            "post",
            "/api/v1/accounts",
            {"external_id": "a-1", "jurisdiction": "{bad}"},
            lambda bad: _unknown(bad, "jurisdiction", "unknown_jurisdiction"),
        ),
        (
            "post",
            "/api/v1/consent-defaults",
            {"jurisdiction": "{bad}", "purpose": "human_review", "granted": True},
            lambda bad: _unknown(bad, "jurisdiction", "unknown_jurisdiction"),
        ),
        (
            "post",
            "/api/v1/transfer-rules",
            {"jurisdiction": "{bad}", "reviewer_location": "IE"},
            lambda bad: _unknown(bad, "jurisdiction", "unknown_jurisdiction"),
        ),
        (
            "post",
            "/api/v1/transfer-rules",
            {"jurisdiction": "DE", "reviewer_location": "{bad}"},
            lambda bad: _unknown(bad, "reviewer_location", "unknown_location"),
        ),
        (
            "post",
            "/api/v1/samples",
            {"purpose": "human_review", "size": 1, "reviewer_location": "{bad}"},
            lambda bad: _error("unknown_location", NEEDED, {"reviewer_location": [NEEDED]}),
        ),
        (
            "post",
            "/api/v1/samples",
            {
                "purpose": "human_review",
                "size": 1,
                "reviewer_location": "DE",
                "jurisdiction": "{bad}",
            },
            lambda bad: _error("unknown_jurisdiction", NEEDED, {"jurisdiction": [NEEDED]}),
        ),
        (
            "post",
            "/api/v1/eligibility/batch",
            {"purpose": "human_review", "recordings": ["rec-1"], "reviewer_location": "{bad}"},
            lambda bad: _error(
                "unknown_location",
                "reviewer_location must be an ISO 3166-1 alpha-2 country code.",
                {"reviewer_location": [COUNTRY_FIELD_MESSAGE]},
            ),
        ),
        (
            "get",
            "/api/v1/eligibility/rec-1?purpose=human_review&reviewer_location={bad}",
            None,
            lambda bad: _error(
                "unknown_location",
                "reviewer_location must be an ISO 3166-1 alpha-2 country code.",
                {"reviewer_location": [COUNTRY_FIELD_MESSAGE]},
            ),
        ),
    ],
)
def test_a_bad_country_is_refused_as_the_api_has_always_refused_it(
    platform, method, url, body, expected, bad
):
    RecordingFactory(external_id="rec-1")
    if body is None:
        response = platform.get(url.format(bad=bad))
    else:
        filled = {k: v.format(bad=bad) if isinstance(v, str) else v for k, v in body.items()}
        response = getattr(platform, method)(url, filled, format="json")

    assert response.status_code == 400
    assert response.json() == expected(bad)


@pytest.mark.parametrize("bad", [49, ["DE"]])
def test_the_sampling_and_eligibility_bodies_refuse_a_country_that_is_no_string(platform, bad):
    RecordingFactory(external_id="rec-1")

    drawn = platform.post(
        "/api/v1/samples",
        {"purpose": "human_review", "size": 1, "reviewer_location": bad},
        format="json",
    )
    checked = platform.post(
        "/api/v1/eligibility/batch",
        {"purpose": "human_review", "recordings": ["rec-1"], "reviewer_location": bad},
        format="json",
    )

    assert (drawn.status_code, drawn.json()) == (
        400,
        _error("unknown_location", NEEDED, {"reviewer_location": [NEEDED]}),
    )
    assert (checked.status_code, checked.json()["error"]) == (
        400,
        {
            "code": "unknown_location",
            "message": "reviewer_location must be an ISO 3166-1 alpha-2 country code.",
            "fields": {
                "reviewer_location": [{"code": "unknown", "message": COUNTRY_FIELD_MESSAGE}]
            },
        },
    )


def _refusal(call) -> tuple[int, str, str, dict[str, Any]]:
    with pytest.raises(ApplicationError) as refused:
        call()
    error = refused.value
    return error.status_code, error.code, error.message, error.fields


@pytest.mark.parametrize("bad", ["XX", 49, None])
def test_the_services_refuse_a_bad_country_as_they_always_have(bad):
    unknown = f"{bad!r} is not an ISO 3166-1 alpha-2 country code."

    assert _refusal(lambda: account_create(external_id="a-1", jurisdiction=bad, actor="t")) == (
        400,
        "unknown_jurisdiction",
        unknown,
        {"jurisdiction": [UNKNOWN]},
    )
    assert _refusal(
        lambda: consent_default_create(
            jurisdiction=bad, purpose="human_review", granted=True, actor="t"
        )
    ) == (400, "unknown_jurisdiction", unknown, {"jurisdiction": [UNKNOWN]})
    assert _refusal(
        lambda: transfer_rule_create(jurisdiction=bad, reviewer_location="IE", actor="t")
    ) == (400, "unknown_jurisdiction", unknown, {"jurisdiction": [UNKNOWN]})
    assert _refusal(
        lambda: transfer_rule_create(jurisdiction="DE", reviewer_location=bad, actor="t")
    ) == (400, "unknown_location", unknown, {"reviewer_location": [UNKNOWN]})
    assert _refusal(lambda: reviewer_create(user=UserFactory(), location=bad, actor="t")) == (
        400,
        "unknown_location",
        NEEDED,
        {"location": [FieldError("unknown", NEEDED)]},
    )


@pytest.mark.parametrize("bad", ["XX", "de", "DEU", "", 49, None, ["DE"], {"DE": 1}])
def test_require_country_refuses_anything_but_a_country_code(bad):
    assert _refusal(lambda: require_country(bad, field="home", code="unknown_home")) == (
        400,
        "unknown_home",
        f"{bad!r} is not an ISO 3166-1 alpha-2 country code.",
        {"home": [UNKNOWN]},
    )
    assert require_country("DE", field="home", code="unknown_home") == "DE"


def test_an_account_with_a_jurisdiction_that_is_no_string_is_refused_not_a_crash():
    # given a caller of the service that skipped the serializer (the demo seed, a shell)
    # when the jurisdiction is a list, then a 400 as for any bad code, not a TypeError
    assert _refusal(lambda: account_create(external_id="a-1", jurisdiction=["DE"], actor="t")) == (
        400,
        "unknown_jurisdiction",
        "['DE'] is not an ISO 3166-1 alpha-2 country code.",
        {"jurisdiction": [UNKNOWN]},
    )
