"""GET /api/v1/reports/consent: consent rates per jurisdiction and purpose over the
period, and reviews by reviewer location (compliance/consent/reports.py and
compliance/sampling/reports.py, served by compliance/sampling/apis.py)."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from rest_framework.test import APIClient

from compliance.actions.consent import consent_set
from compliance.clients.scopes import SCOPES
from compliance.consent.services import consent_default_create
from compliance.sampling.models import ReviewItem
from tests.factories import ProfileFactory, RecordingFactory
from tests.web.conftest import make_officer, person, verify_session

pytestmark = pytest.mark.django_db

URL = "/api/v1/reports/consent"
NOW = datetime(2026, 6, 10, 12, 0, tzinfo=UTC)


def _consent(profile, purpose: str, granted: bool) -> None:
    consent_set(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel="api",
        notice_version="2026-01",
        actor="test",
    )


def _item(item_id: str, profile, location: str, *, days_ago: int, **fields) -> None:
    """A review item of a new recording of `profile` (one item per recording)."""
    created = NOW - timedelta(days=days_ago)
    ReviewItem.objects.create(
        id=item_id,
        recording=RecordingFactory(profile=profile, recorded_at=NOW - timedelta(days=5)),
        purpose="human_review",
        reviewer_location=location,
        created_at=created,
        expires_at=created + timedelta(hours=8),
        **fields,
    )


@pytest.fixture
def known_data() -> None:
    """Three US profiles (one a child) and one DE profile, created before the period.
    In the period: ann grants human review; bob grants model training, then withdraws
    it; DE's default grants model training. Reviews: two clips heard (one in IE, of a US
    recording), one revoked, and one drawn before the period."""
    with time_machine.travel(NOW - timedelta(days=5), tick=False):
        ann = ProfileFactory(account__jurisdiction="US")
        bob = ProfileFactory(account__jurisdiction="US")
        ProfileFactory(account__jurisdiction="US", is_child=True)
        ProfileFactory(account__jurisdiction="DE")
        consent_default_create(
            jurisdiction="DE", purpose="model_training", granted=True, actor="test"
        )
    with time_machine.travel(NOW - timedelta(days=2), tick=False):
        _consent(ann, "human_review", True)
        _consent(bob, "model_training", True)
    with time_machine.travel(NOW - timedelta(days=1), tick=False):
        _consent(bob, "model_training", False)
    heard = {"delivered_at": NOW - timedelta(days=1)}
    _item("i-us", ann, "US", days_ago=1, state="delivered", **heard)
    _item("i-ie", ann, "IE", days_ago=2, state="done", closed_at=NOW, **heard)
    _item("i-ie-2", ann, "IE", days_ago=2, state="revoked")
    _item("i-old", ann, "IE", days_ago=10, state="done", closed_at=NOW, **heard)


def _get(client: APIClient, query: str = "") -> dict:
    with time_machine.travel(NOW, tick=False):
        response = client.get(URL + query)
    assert response.status_code == 200, response.content
    return response.json()


def test_the_report_gives_rates_per_jurisdiction_and_purpose_day_by_day(
    known_data, api_client_with_scopes
):
    report = _get(api_client_with_scopes("reports:read"), "?days=3")

    assert report["days"] == 3
    assert (report["first_day"], report["last_day"]) == ("2026-06-08", "2026-06-10")
    series = {(s["jurisdiction"], s["purpose"]): s["points"] for s in report["consent_rates"]}
    assert list(series) == [
        ("DE", "human_review"),
        ("DE", "model_training"),
        ("US", "human_review"),
        ("US", "model_training"),
    ]
    assert [p["date"] for p in series["US", "human_review"]] == [
        "2026-06-08",
        "2026-06-09",
        "2026-06-10",
    ]

    def figures(key):
        return [(p["profiles"], p["granted"], p["rate"]) for p in series[key]]

    # the child never counts for human review; ann's grant holds
    assert figures(("US", "human_review")) == [(2, 1, 0.5)] * 3
    # bob's grant for a day, then withdrawn; the child counts for model training
    assert figures(("US", "model_training")) == [(3, 1, 1 / 3), (3, 0, 0.0), (3, 0, 0.0)]
    assert figures(("DE", "model_training")) == [(1, 1, 1.0)] * 3  # the default
    assert figures(("DE", "human_review")) == [(1, 0, 0.0)] * 3


def test_the_report_gives_reviews_by_location_within_the_period(known_data, api_client_with_scopes):
    report = _get(api_client_with_scopes("reports:read"), "?days=3")

    assert report["reviews_by_location"] == [
        {
            "reviewer_location": "IE",
            "selected": 2,
            "heard": 1,
            "annotated": 1,
            "revoked": 1,
            "cross_border": 1,
        },
        {
            "reviewer_location": "US",
            "selected": 1,
            "heard": 1,
            "annotated": 0,
            "revoked": 0,
            "cross_border": 0,
        },
    ]
    wider = _get(api_client_with_scopes("reports:read"), "?days=30")
    assert wider["reviews_by_location"][0]["selected"] == 3  # the item of 10 days ago


def test_the_period_is_30_days_by_default(known_data, api_client_with_scopes):
    report = _get(api_client_with_scopes("reports:read"))

    assert report["days"] == 30
    assert all(len(s["points"]) == 30 for s in report["consent_rates"])
    assert report["last_day"] == "2026-06-10"


def test_a_day_without_profiles_has_no_rate(api_client_with_scopes):
    with time_machine.travel(NOW - timedelta(hours=1), tick=False):
        ProfileFactory(account__jurisdiction="FR")

    report = _get(api_client_with_scopes("reports:read"), "?days=2")

    points = report["consent_rates"][0]["points"]
    assert [(p["profiles"], p["rate"]) for p in points] == [(0, None), (1, 0.0)]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("?days=0", "out_of_range"),
        ("?days=367", "out_of_range"),
        ("?days=99999999", "not_an_integer"),
        ("?days=", "not_an_integer"),
        ("?days=-1", "not_an_integer"),
        ("?days=1.5", "not_an_integer"),
        ("?days=ten", "not_an_integer"),
        ("?days=%EF%BC%93", "not_an_integer"),  # a full-width 3, which int() would take
    ],
)
def test_a_bad_period_is_a_400_with_a_code(api_client_with_scopes, query: str, reason: str):
    response = api_client_with_scopes("reports:read").get(URL + query)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_days"
    (problem,) = error["fields"]["days"]
    assert problem["code"] == reason
    assert problem["message"].endswith(".")


def test_a_client_without_reports_read_is_refused(api_client_with_scopes):
    others = sorted(set(SCOPES) - {"reports:read"})

    response = api_client_with_scopes(*others).get(URL)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"
    assert "consent_rates" not in response.json()


def test_nobody_without_credentials_is_refused():
    response = APIClient().get(URL)

    assert response.status_code in (401, 403)
    assert "consent_rates" not in response.json()


def test_an_officer_signed_in_with_a_second_factor_may_read_the_report(known_data):
    officer, device = make_officer()
    client = APIClient()
    client.force_login(officer)
    verify_session(client, device)

    report = _get(client, "?days=3")

    assert report["days"] == 3
    assert report["reviews_by_location"][0]["reviewer_location"] == "IE"


def test_an_officer_without_a_verified_second_factor_is_refused():
    officer, _ = make_officer()
    client = APIClient()
    client.force_login(officer)

    assert client.get(URL).status_code == 403


def test_an_end_user_is_refused():
    client = APIClient()
    client.force_login(person("someone"))

    assert client.get(URL).status_code == 403


def test_the_schema_documents_the_period_parameter(client):
    schema = client.get("/api/schema/?format=json").json()

    operation = schema["paths"]["/api/v1/reports/consent"]["get"]
    (days,) = [p for p in operation["parameters"] if p["name"] == "days"]
    assert days["in"] == "query"
    assert days["schema"] == {"type": "integer", "minimum": 1, "maximum": 366}
    assert "400" in operation["responses"]


def test_the_reports_queries_do_not_grow_with_the_period_or_the_jurisdictions(
    known_data, api_client_with_scopes
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = api_client_with_scopes("reports:read")

    def queries(query: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            _get(client, query)
        return len(captured.captured_queries)

    few = queries("?days=3")
    with time_machine.travel(NOW - timedelta(days=5), tick=False):
        for country in ("FR", "GB", "IE", "NL", "SE"):
            ProfileFactory(account__jurisdiction=country)

    assert queries("?days=366") == few
