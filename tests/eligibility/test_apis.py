import json

import pytest
from django.utils import timezone
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from compliance.actions.consent import consent_set
from tests.factories import RecordingFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def asker(api_client_with_scopes):
    return api_client_with_scopes("eligibility:read")


def _grant(profile, purpose="human_review", granted=True):
    consent_set(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel="api",
        notice_version="v1",
        actor="test",
    )


def test_a_consenting_adults_recording_is_eligible(asker):
    recording = RecordingFactory(profile__account__jurisdiction="DE")
    _grant(recording.profile)
    response = asker.get(f"/api/v1/eligibility/{recording.external_id}?purpose=human_review")
    assert response.status_code == 200
    assert response.json() == {
        "recording": recording.external_id,
        "purpose": "human_review",
        "eligible": True,
        "reasons": [],
    }


def test_a_withdrawal_makes_the_recording_ineligible_at_once(asker):
    recording = RecordingFactory()
    _grant(recording.profile)
    _grant(recording.profile, granted=False)
    body = asker.get(f"/api/v1/eligibility/{recording.external_id}?purpose=human_review").json()
    assert body["eligible"] is False
    assert body["reasons"] == ["consent_withdrawn"]


def test_without_any_consent_the_reason_is_no_consent(asker):
    recording = RecordingFactory()
    body = asker.get(f"/api/v1/eligibility/{recording.external_id}?purpose=model_training").json()
    assert body["reasons"] == ["no_consent"]


def test_a_reviewer_abroad_needs_a_transfer_rule(asker, platform):
    recording = RecordingFactory(profile__account__jurisdiction="DE")
    _grant(recording.profile)
    url = f"/api/v1/eligibility/{recording.external_id}?purpose=human_review&reviewer_location=IE"
    assert asker.get(url).json()["reasons"] == ["transfer_not_allowed"]
    platform.post(
        "/api/v1/transfer-rules", {"jurisdiction": "DE", "reviewer_location": "IE"}, format="json"
    )
    assert asker.get(url).json()["eligible"] is True


def test_a_purged_recording_is_ineligible_as_purged(asker):
    recording = RecordingFactory(state="purged", purged_at=timezone.now(), purge_reason="retention")
    body = asker.get(f"/api/v1/eligibility/{recording.external_id}?purpose=model_training").json()
    assert body["reasons"] == ["purged"]


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("", "unknown_purpose", "purpose"),
        ("?purpose=listening", "unknown_purpose", "purpose"),
        ("?purpose=human_review&reviewer_location=ZZ", "unknown_location", "reviewer_location"),
        ("?purpose=human_review&reviewer_location=de", "unknown_location", "reviewer_location"),
    ],
)
def test_bad_eligibility_questions_are_400(asker, query, code, field):
    recording = RecordingFactory()
    response = asker.get(f"/api/v1/eligibility/{recording.external_id}{query}")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("body", "field", "field_code"),
    [
        ({"recordings": ["r"]}, "purpose", "required"),
        ({"purpose": "listening", "recordings": ["r"]}, "purpose", "unknown"),
        ({"purpose": "human_review"}, "recordings", "required"),
        ({"purpose": "human_review", "recordings": "r"}, "recordings", "invalid"),
        ({"purpose": "human_review", "recordings": [7]}, "recordings.0", "invalid_id"),
        ({"purpose": "human_review", "recordings": ["r", "", None]}, "recordings.1", "invalid_id"),
    ],
)
def test_the_fast_path_answers_the_one_envelope_with_field_codes_and_sentences(
    asker, body, field, field_code
):
    response = asker.post("/api/v1/eligibility/batch", body, format="json")

    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"code", "message", "fields"}
    [problem] = error["fields"][field]
    assert problem["code"] == field_code
    assert problem["message"][:1].isupper() and problem["message"].endswith(".")


def test_an_unknown_recording_is_404(asker):
    response = asker.get("/api/v1/eligibility/nope?purpose=human_review")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_eligibility_needs_its_scope(api_client_with_scopes, client):
    recording = RecordingFactory()
    other = api_client_with_scopes("recordings:read")
    response = other.get(f"/api/v1/eligibility/{recording.external_id}?purpose=human_review")
    assert response.status_code == 403
    assert (
        client.get(f"/api/v1/eligibility/{recording.external_id}?purpose=human_review").status_code
        == 401
    )


def test_a_batch_answers_every_id_in_order(asker):
    eligible, withdrawn = RecordingFactory(), RecordingFactory()
    _grant(eligible.profile)
    _grant(withdrawn.profile, granted=False)
    ids = [withdrawn.external_id, "missing", eligible.external_id, withdrawn.external_id]
    response = asker.post(
        "/api/v1/eligibility/batch", {"purpose": "human_review", "recordings": ids}, format="json"
    )
    assert response.status_code == 200
    assert response.json()["results"] == [
        {"recording": withdrawn.external_id, "eligible": False, "reasons": ["consent_withdrawn"]},
        {"recording": "missing", "eligible": False, "reasons": ["not_found"]},
        {"recording": eligible.external_id, "eligible": True, "reasons": []},
        {"recording": withdrawn.external_id, "eligible": False, "reasons": ["consent_withdrawn"]},
    ]


def test_a_batch_of_ten_thousand_takes_one_query_per_thousand_ids(asker, django_assert_num_queries):
    ids = [f"r-{i}" for i in range(10_000)]
    with django_assert_num_queries(1 + 10):  # the key lookup, then the facts
        response = asker.post(
            "/api/v1/eligibility/batch",
            {"purpose": "human_review", "recordings": ids},
            format="json",
        )
    assert response.status_code == 200
    assert len(response.json()["results"]) == 10_000


@pytest.mark.parametrize(("method", "status"), [("put", 405), ("delete", 405), ("patch", 405)])
def test_other_methods_are_refused_with_the_error_envelope(asker, method, status):
    response = getattr(asker, method)("/api/v1/eligibility/batch", {}, format="json")
    assert response.status_code == status
    assert response.json()["error"]["code"] == "method_not_allowed"


def test_a_batch_must_be_json(asker):
    response = asker.post(
        "/api/v1/eligibility/batch",
        {"purpose": "human_review", "recordings": "r1"},
        format="multipart",
    )
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


def test_a_session_user_is_not_a_service_client(client, django_user_model):
    user = django_user_model.objects.create(username="u")
    client.force_login(user)
    response = client.get("/api/v1/eligibility/x?purpose=human_review")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (
            {"purpose": "human_review", "recordings": [f"r{i}" for i in range(10_001)]},
            "batch_too_large",
        ),
        ({"purpose": "human_review", "recordings": []}, "validation_error"),
        ({"purpose": "human_review"}, "validation_error"),
        ({"purpose": "human_review", "recordings": "r1"}, "validation_error"),
        ({"purpose": "human_review", "recordings": [1, 2]}, "validation_error"),
        ({"purpose": "human_review", "recordings": [None]}, "validation_error"),
        ({"purpose": "human_review", "recordings": [""]}, "validation_error"),
        ({"purpose": "human_review", "recordings": ["x" * 129]}, "validation_error"),
        ({"purpose": "snooping", "recordings": ["r1"]}, "unknown_purpose"),
        ({"purpose": ["human_review"], "recordings": ["r1"]}, "unknown_purpose"),
        (
            {"purpose": "human_review", "recordings": ["r1"], "reviewer_location": 7},
            "unknown_location",
        ),
        (["r1"], "validation_error"),
    ],
)
def test_bad_batches_are_400(asker, body, code):
    response = asker.post("/api/v1/eligibility/batch", body, format="json")
    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == code


def test_a_batch_refuses_malformed_json(asker):
    response = asker.post("/api/v1/eligibility/batch", "{", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


@hypothesis_settings(max_examples=300, deadline=None)
@given(
    purpose=st.sampled_from(["human_review", "model_training"]),
    results=st.lists(
        st.tuples(
            st.text(min_size=1, max_size=20),
            st.booleans(),
            st.lists(st.sampled_from(["purged", "no_consent", "child_profile"]), max_size=3),
        ),
        max_size=20,
    ),
)
def test_the_batch_answer_is_written_exactly_as_json_dumps_writes_it(purpose, results):
    from compliance.eligibility.apis import _batch_json

    as_dicts = {
        "purpose": purpose,
        "results": [{"recording": r, "eligible": e, "reasons": rs} for r, e, rs in results],
    }
    assert _batch_json(purpose, results) == json.dumps(as_dicts, separators=(",", ":"))
    assert json.loads(_batch_json(purpose, results)) == as_dicts


def test_the_service_has_no_benchmark_endpoint(asker):
    """The benchmark's floor is mounted by bench/server/ only."""
    assert asker.get("/api/v1/_bench/floor").status_code == 404
