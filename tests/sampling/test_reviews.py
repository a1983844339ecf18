"""GET /api/v1/profiles/{id}/reviews: who heard what, when, from where."""

from datetime import timedelta
from typing import Any

import pytest
from rest_framework.test import APIClient

from compliance.consent.models import ConsentState
from compliance.ledger.models import LedgerEntry
from compliance.sampling.models import ReviewItem
from compliance.sampling.services import SampleRequest, review_item_audio_open, sample_draw
from tests.factories import AccountFactory, ProfileFactory, UserFactory
from tests.web.conftest import make_officer, verify_session

from .conftest import HUMAN, LINK, reviewable

pytestmark = pytest.mark.django_db


@pytest.fixture
def world() -> dict[str, Any]:
    """Two recordings of the owner's profile and one of another's, all drawn; one of
    the owner's clips fetched through the service."""
    owner = UserFactory(username="owner")
    mine = ProfileFactory(
        external_id="prof-mine", account=AccountFactory(jurisdiction="DE", user=owner)
    )
    theirs = ProfileFactory(external_id="prof-theirs", account=AccountFactory(jurisdiction="DE"))
    for profile, external_id in ((mine, "rec-a"), (mine, "rec-b"), (theirs, "rec-x")):
        reviewable(profile=profile, external_id=external_id)
    ConsentState.objects.filter(profile__in=[mine, theirs], purpose=HUMAN).update(granted=True)
    request = SampleRequest(purpose=HUMAN, size=10, reviewer_location="DE")
    drawn = sample_draw(request=request, actor="client:t").items
    assert len(drawn) == 3
    by_recording = dict(ReviewItem.objects.values_list("recording__external_id", "pk"))
    review_item_audio_open(item_id=by_recording["rec-a"], caller=LINK).file.close()
    return {"owner": owner, "items": by_recording}


def _owner_client(world) -> APIClient:
    client = APIClient()
    client.force_login(world["owner"])
    return client


def test_the_owner_sees_who_heard_what_when_from_where(world):
    response = _owner_client(world).get("/api/v1/profiles/prof-mine/reviews")

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["profile"] == "prof-mine"
    rows = {row["recording"]: row for row in body["reviews"]}
    assert set(rows) == {"rec-a", "rec-b"}  # never another profile's
    heard = rows["rec-a"]
    item = ReviewItem.objects.get(pk=world["items"]["rec-a"])
    access = LedgerEntry.objects.get(kind="review_item.accessed", subject=f"review_item:{item.pk}")
    assert heard["review_item"] == item.pk
    assert heard["reviewer_location"] == "DE"
    assert heard["purpose"] == HUMAN
    assert heard["clip_access_seq"] == access.seq
    assert heard["clip_fetched_at"] is not None
    assert heard["delivered_at"] is not None
    assert rows["rec-b"]["clip_fetched_at"] is None
    assert rows["rec-b"]["clip_access_seq"] is None
    assert world["items"]["rec-x"] not in response.content.decode()


def test_newest_first_and_bounded(world):
    client = _owner_client(world)
    ReviewItem.objects.filter(pk=world["items"]["rec-b"]).update(
        created_at=ReviewItem.objects.get(pk=world["items"]["rec-a"]).created_at
        + timedelta(seconds=5)
    )

    rows = client.get("/api/v1/profiles/prof-mine/reviews").json()["reviews"]
    one = client.get("/api/v1/profiles/prof-mine/reviews?limit=1").json()["reviews"]

    assert [row["recording"] for row in rows] == ["rec-b", "rec-a"]
    assert [row["recording"] for row in one] == ["rec-b"]


@pytest.mark.parametrize("limit", ["0", "1001", "-1", "x", "1.5", ""])
def test_a_bad_limit_is_a_400_with_a_code(world, limit):
    response = _owner_client(world).get(f"/api/v1/profiles/prof-mine/reviews?limit={limit}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_parameter"


def test_another_user_is_told_the_profile_does_not_exist(world):
    client = APIClient()
    client.force_login(UserFactory(username="stranger"))

    assert client.get("/api/v1/profiles/prof-mine/reviews").status_code == 404


def test_a_client_needs_the_ledger_read_scope(world, api_client_with_scopes):
    assert (
        api_client_with_scopes("consents:read")
        .get("/api/v1/profiles/prof-mine/reviews")
        .status_code
        == 403
    )
    response = api_client_with_scopes("ledger:read").get("/api/v1/profiles/prof-theirs/reviews")
    assert response.status_code == 200
    assert [row["recording"] for row in response.json()["reviews"]] == ["rec-x"]


def test_a_verified_officer_may_read_them(world):
    officer, device = make_officer()
    client = APIClient()
    client.force_login(officer)
    verify_session(client, device)

    response = client.get("/api/v1/profiles/prof-mine/reviews")

    assert response.status_code == 200
    assert len(response.json()["reviews"]) == 2


def test_delivered_at_is_the_time_of_the_draw_entry_whose_part_names_the_item(world):
    draw = LedgerEntry.objects.get(kind="sample.drawn")

    rows = _owner_client(world).get("/api/v1/profiles/prof-mine/reviews").json()["reviews"]

    assert "prof-mine" not in bytes(draw.leaf).decode()  # the parts_root commits to it
    assert {row["delivered_at"] for row in rows} == {
        draw.created_at.isoformat().replace("+00:00", "Z")
    }
