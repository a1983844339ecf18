import json
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.actions.consent import consent_set
from compliance.consent.models import ConsentState
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Artefact, Recording
from compliance.sampling.models import ReviewItem, ReviewItemState
from tests.factories import ReviewerFactory, TransferRuleFactory, UserFactory

from .conftest import CLIP, HUMAN, TRAINING, fetch, reviewable

pytestmark = pytest.mark.django_db

ITEM_KEYS = {"id", "audio_url", "transcript", "expires_at", "link_expires_at"}


def _entries() -> int:
    return LedgerEntry.objects.count()


# --- the draw ------------------------------------------------------------------------


def test_a_draw_answers_items_with_links_and_nothing_that_leads_back_to_the_speaker(draw):
    recordings = [reviewable(transcript=f"words {i}") for i in range(3)]
    before = _entries()

    response = draw(size=3, reviewer_location="DE")

    assert response.status_code == 201, response.content
    body = response.json()
    assert (body["purpose"], body["reviewer_location"]) == (HUMAN, "DE")
    assert len(body["items"]) == 3
    for item in body["items"]:
        assert set(item) == ITEM_KEYS
        assert item["audio_url"].startswith(f"http://testserver/api/v1/review-items/{item['id']}/")
        assert "?sig=" in item["audio_url"]
        assert len(item["id"]) >= 20
    assert sorted(i["transcript"] for i in body["items"]) == ["words 0", "words 1", "words 2"]
    text = response.content.decode()
    values = {v for item in body["items"] for v in item.values()}
    segments = {
        part for item in body["items"] for part in urlsplit(item["audio_url"]).path.split("/")
    }
    for recording in recordings:
        profile = recording.profile
        for identifier in (recording.external_id, profile.external_id, profile.account.external_id):
            assert identifier not in text
        for identifier in (str(recording.pk), str(profile.pk), str(profile.account.pk)):
            assert identifier not in values
            assert identifier not in segments
    for key in Artefact.objects.exclude(storage_key="").values_list("storage_key", flat=True):
        assert key not in text
        assert key.rsplit("/", 1)[-1] not in text
    assert ReviewItem.objects.filter(state=ReviewItemState.PENDING).count() == 3
    assert _entries() == before + 1
    entry = LedgerEntry.objects.latest("seq")
    assert entry.kind == "sample.drawn"
    assert entry.payload["requested"] == 3
    assert entry.payload["drawn"] == 3
    assert entry.subject == "sample"
    assert not {r.external_id for r in recordings} & set(json.dumps(entry.payload).split('"'))


def test_each_recording_is_handed_out_once(draw):
    for _ in range(5):
        reviewable()

    first = draw(size=3, reviewer_location="DE").json()["items"]
    second = draw(size=3, reviewer_location="DE").json()["items"]
    third = draw(size=3, reviewer_location="DE").json()["items"]

    assert (len(first), len(second), len(third)) == (3, 2, 0)
    recordings = ReviewItem.objects.values_list("recording_id", flat=True)
    assert len(set(recordings)) == len(recordings) == 5


def test_a_draw_takes_only_eligible_recordings(draw):
    eligible = reviewable()
    reviewable(granted={HUMAN: False})
    reviewable(granted={HUMAN: None})
    reviewable(sensitive=True)
    reviewable(false_wake=True)
    reviewable(jurisdiction="US")  # a DE reviewer, no transfer rule
    child = reviewable()
    child.profile.is_child = True
    child.profile.save()
    reviewable(transcript=None).artefacts.filter(category="audio").update(state="purged")

    body = draw(size=100, reviewer_location="DE").json()

    assert len(body["items"]) == 1
    assert ReviewItem.objects.get().recording == eligible


def test_a_transfer_rule_opens_a_jurisdiction_to_another_location(draw):
    french = reviewable(jurisdiction="FR")
    TransferRuleFactory(jurisdiction="FR", reviewer_location="DE")

    body = draw(size=5, reviewer_location="DE").json()

    assert len(body["items"]) == 1
    assert ReviewItem.objects.get().recording == french


def test_a_draw_can_be_restricted_to_a_jurisdiction_and_a_time_window(draw):
    TransferRuleFactory(jurisdiction="FR", reviewer_location="DE")
    now = timezone.now()
    wanted = reviewable(jurisdiction="FR", recorded_at=now - timedelta(days=3))
    reviewable(jurisdiction="FR", recorded_at=now - timedelta(days=30))
    reviewable(jurisdiction="DE", recorded_at=now - timedelta(days=3))

    body = draw(
        size=5,
        reviewer_location="DE",
        jurisdiction="FR",
        recorded_from=(now - timedelta(days=7)).isoformat(),
        recorded_to=now.isoformat(),
    ).json()

    assert len(body["items"]) == 1
    assert ReviewItem.objects.get().recording == wanted


def test_a_draw_for_model_training_needs_both_consents(draw):
    both = reviewable(granted={HUMAN: True, TRAINING: True})
    reviewable(granted={HUMAN: True, TRAINING: False})
    reviewable(granted={HUMAN: False, TRAINING: True})

    body = draw(size=5, purpose=TRAINING, reviewer_location="DE").json()

    assert len(body["items"]) == 1
    item = ReviewItem.objects.get()
    assert (item.recording, item.purpose) == (both, TRAINING)


def test_items_drawn_for_a_reviewer_are_theirs_and_live_a_shift(draw, reviewer):
    reviewable()

    response = draw(size=1, reviewer=reviewer.user.username)

    assert response.status_code == 201, response.content
    assert response.json()["reviewer_location"] == "DE"  # the reviewer's own
    item = ReviewItem.objects.get()
    assert item.reviewer == reviewer
    assert item.expires_at - item.created_at == timedelta(hours=8)


def test_items_without_a_reviewer_live_as_long_as_their_link(draw):
    reviewable()

    item = draw(size=1, reviewer_location="DE").json()["items"][0]

    assert item["expires_at"] == item["link_expires_at"]


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"size": 0}, "validation_error", "size"),
        ({"size": -1}, "validation_error", "size"),
        ({"size": 1001}, "sample_too_large", "size"),
        ({"size": "5"}, "validation_error", "size"),
        ({"size": 2.5}, "validation_error", "size"),
        ({"size": True}, "validation_error", "size"),
        ({"size": None}, "validation_error", "size"),
        ({"purpose": "marketing"}, "unknown_purpose", "purpose"),
        ({"purpose": None}, "unknown_purpose", "purpose"),
        ({"reviewer_location": "XX"}, "unknown_location", "reviewer_location"),
        ({"reviewer_location": "de"}, "unknown_location", "reviewer_location"),
        ({"reviewer_location": 49}, "unknown_location", "reviewer_location"),
        ({"reviewer_location": None}, "validation_error", "reviewer_location"),
        ({"jurisdiction": "ZZ"}, "unknown_jurisdiction", "jurisdiction"),
        ({"recorded_from": "2026-01-01T00:00:00"}, "validation_error", "recorded_from"),
        ({"recorded_to": "yesterday"}, "validation_error", "recorded_to"),
        (
            {"recorded_from": "2026-02-01T00:00:00Z", "recorded_to": "2026-01-01T00:00:00Z"},
            "validation_error",
            "recorded_to",
        ),
        ({"reviewer": "nobody"}, "unknown_reviewer", "reviewer"),
        ({"reviewer": 7}, "unknown_reviewer", "reviewer"),
        ({"jurisdictions": ["DE"]}, "validation_error", "jurisdictions"),
    ],
)
def test_bad_input_is_refused_with_a_code_and_assigns_nothing(draw, change, code, field):
    reviewable()
    before = _entries()

    response = draw(**{"reviewer_location": "DE", "size": 5, **change})

    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert field in error["fields"]
    assert not ReviewItem.objects.exists()
    assert _entries() == before


def test_a_body_that_is_not_an_object_is_refused(sampler):
    response = sampler.post("/api/v1/samples", [1, 2], format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_a_reviewer_at_another_location_is_refused(draw, reviewer):
    response = draw(size=1, reviewer=reviewer.user.username, reviewer_location="IE")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "reviewer_location_mismatch"


def test_an_inactive_reviewer_is_unknown(draw, reviewer):
    reviewer.user.is_active = False
    reviewer.user.save()

    response = draw(size=1, reviewer=reviewer.user.username)

    assert response.json()["error"]["code"] == "unknown_reviewer"


def test_a_spent_quota_is_429_and_assigns_nothing(draw):
    reviewer = ReviewerFactory(location="DE", daily_quota=3)
    for _ in range(6):
        reviewable()

    assert len(draw(size=2, reviewer=reviewer.user.username).json()["items"]) == 2
    over = draw(size=2, reviewer=reviewer.user.username)

    assert over.status_code == 429
    assert over.json()["error"]["code"] == "quota_exceeded"
    assert over.json()["error"]["fields"] == {
        "size": [{"code": "max_value", "message": "At most 1 more today."}]
    }
    assert ReviewItem.objects.count() == 2
    assert len(draw(size=1, reviewer=reviewer.user.username).json()["items"]) == 1
    assert draw(size=1, reviewer=reviewer.user.username).status_code == 429


def test_the_quota_is_per_day(draw):
    reviewer = ReviewerFactory(location="DE", daily_quota=1)
    for _ in range(2):
        reviewable()
    assert draw(size=1, reviewer=reviewer.user.username).status_code == 201

    with time_machine.travel(timezone.now() + timedelta(days=1)):
        response = draw(size=1, reviewer=reviewer.user.username)

    assert response.status_code == 201


def test_drawing_needs_the_samples_scope(api_client_with_scopes):
    client = api_client_with_scopes("eligibility:read")

    response = client.post(
        "/api/v1/samples", {"purpose": HUMAN, "size": 1, "reviewer_location": "DE"}, format="json"
    )

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


@pytest.mark.parametrize("who", ["anonymous", "reviewer"])
def test_drawing_is_for_service_clients_only(who, reviewer_client):
    client = APIClient() if who == "anonymous" else reviewer_client

    response = client.post(
        "/api/v1/samples", {"purpose": HUMAN, "size": 1, "reviewer_location": "DE"}, format="json"
    )

    assert response.status_code in (401, 403)
    assert not ReviewItem.objects.exists()


# --- the audio -------------------------------------------------------------------------


def _one_item(draw, **body):
    response = draw(size=1, **body)
    assert response.status_code == 201, response.content
    [item] = response.json()["items"]
    return item


def test_the_signed_link_alone_streams_the_clip_and_the_access_is_in_the_ledger(draw):
    reviewable()
    item = _one_item(draw, reviewer_location="DE")

    response = fetch(APIClient(), item["audio_url"])

    assert response.status_code == 200
    assert response.body == CLIP
    assert item["id"] in response["Content-Disposition"]
    assert "audio/" not in response["Content-Disposition"]
    assert response["Cache-Control"] == "no-store, private"
    stored = ReviewItem.objects.get()
    assert stored.state == ReviewItemState.DELIVERED
    assert stored.delivered_at is not None
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.subject, entry.actor) == (
        "review_item.accessed",
        f"review_item:{item['id']}",
        "link",
    )
    assert entry.payload == {"action": "audio", "allowed": True, "reasons": [], "via": "link"}


def test_the_assigned_reviewer_fetches_with_their_session(draw, reviewer, reviewer_client):
    reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)

    response = fetch(reviewer_client, f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 200
    assert response.body == CLIP
    assert LedgerEntry.objects.latest("seq").payload["via"] == "session"


def test_another_reviewer_gets_404_and_the_attempt_is_recorded(draw, reviewer):
    reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)
    other = APIClient()
    other.force_login(ReviewerFactory(location="DE").user)

    response = fetch(other, f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.payload["reasons"]) == ("review_item.refused", ["not_assigned"])
    assert ReviewItem.objects.get().state == ReviewItemState.PENDING


def test_an_unknown_item_is_404_like_a_foreign_one(reviewer_client):
    response = fetch(reviewer_client, "/api/v1/review-items/no-such-item/audio")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_an_item_without_a_reviewer_is_404_to_a_session_without_its_link(draw, reviewer_client):
    reviewable()
    item = _one_item(draw, reviewer_location="DE")

    response = fetch(reviewer_client, f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 404


def test_without_a_session_or_a_link_the_audio_is_refused(draw):
    reviewable()
    item = _one_item(draw, reviewer_location="DE")

    response = fetch(APIClient(), f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Session realm="earshot", SignedLink realm="earshot"'


def test_a_tampered_or_borrowed_signature_is_refused(draw):
    reviewable()
    reviewable()
    first, second = draw(size=2, reviewer_location="DE").json()["items"]
    sig = first["audio_url"].split("sig=")[1]

    tampered = fetch(APIClient(), first["audio_url"][:-2] + "xx")
    borrowed = fetch(APIClient(), f"/api/v1/review-items/{second['id']}/audio?sig={sig}")

    assert tampered.status_code == borrowed.status_code == 403
    assert tampered.json()["error"]["code"] == "invalid_link"
    assert borrowed.json()["error"]["code"] == "invalid_link"


def test_an_expired_link_is_refused_but_the_reviewer_session_still_works(
    draw, reviewer, reviewer_client
):
    reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)

    with time_machine.travel(timezone.now() + timedelta(minutes=6)):
        by_link = fetch(APIClient(), item["audio_url"])
        by_session = fetch(reviewer_client, item["audio_url"])

    assert by_link.status_code == 403
    assert by_link.json()["error"]["code"] == "link_expired"
    assert by_session.status_code == 200


def test_an_expired_item_is_410_even_before_the_sweep(draw, reviewer, reviewer_client):
    reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)

    with time_machine.travel(timezone.now() + timedelta(hours=9)):
        response = fetch(reviewer_client, f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "expired"
    assert ReviewItem.objects.get().state == ReviewItemState.EXPIRED
    entry = LedgerEntry.objects.latest("seq")
    assert (entry.kind, entry.payload["reasons"]) == ("review_item.refused", ["expired"])


# --- withdrawal and the gate ----------------------------------------------------------


def test_a_withdrawal_through_the_api_revokes_the_items_and_their_audio_is_gone(
    draw, api_client_with_scopes
):
    recording = reviewable()
    item = _one_item(draw, reviewer_location="DE")
    assert fetch(APIClient(), item["audio_url"]).status_code == 200  # delivered

    withdrawn = api_client_with_scopes("consents:write").put(
        f"/api/v1/profiles/{recording.profile.external_id}/consents/{HUMAN}",
        {"granted": False, "notice_version": "v2"},
        format="json",
    )

    assert withdrawn.status_code == 200, withdrawn.content
    stored = ReviewItem.objects.get()
    assert (stored.state, stored.close_reason) == (ReviewItemState.REVOKED, "consent_withdrawn")
    response = fetch(APIClient(), item["audio_url"])
    assert response.status_code == 410
    assert response.json()["error"]["code"] == "revoked"
    kinds = list(LedgerEntry.objects.order_by("-seq").values_list("kind", flat=True)[:3])
    assert kinds == ["review_item.refused", "consent.withdrawn", "review_items.revoked"]


def test_the_owner_withdrawing_on_the_privacy_page_revokes_too(draw):
    recording = reviewable()
    owner = UserFactory()
    recording.profile.account.user = owner
    recording.profile.account.save()
    item = _one_item(draw, reviewer_location="DE")
    client = APIClient()
    client.force_login(owner)

    client.put(
        f"/api/v1/profiles/{recording.profile.external_id}/consents/{HUMAN}",
        {"granted": False, "notice_version": "v2"},
        format="json",
    )

    assert fetch(APIClient(), item["audio_url"]).status_code == 410


def _ineligible_by_consent(recording):
    # Straight to the state row, past consent_set and its revocation: the gate alone.
    ConsentState.objects.filter(profile=recording.profile, purpose=HUMAN).update(granted=False)


def _ineligible_by_flag(recording):
    Recording.objects.filter(pk=recording.pk).update(sensitive=True)


def _ineligible_by_purge(recording):
    Recording.objects.filter(pk=recording.pk).update(state="purged", purged_at=timezone.now())
    recording.artefacts.update(state="purged", storage_key="", text="")


def _ineligible_by_retention(recording):
    recording.artefacts.filter(category="audio").update(
        expires_at=timezone.now() - timedelta(seconds=1)
    )


def _ineligible_by_missing_file(recording):
    from django.core.files.storage import default_storage

    default_storage.delete(recording.artefacts.get(category="audio").storage_key)


@pytest.mark.parametrize(
    ("make_ineligible", "reason"),
    [
        (_ineligible_by_consent, "consent_withdrawn"),
        (_ineligible_by_flag, "sensitive"),
        (_ineligible_by_purge, "purged"),
        (_ineligible_by_retention, "retention_expired"),
        (_ineligible_by_missing_file, "no_audio"),
    ],
)
def test_the_gate_refuses_a_recording_that_became_ineligible_after_the_draw(
    draw, make_ineligible, reason
):
    recording = reviewable()
    item = _one_item(draw, reviewer_location="DE")

    make_ineligible(recording)
    response = fetch(APIClient(), item["audio_url"])

    assert response.status_code == 410
    assert response.json()["error"]["code"] == "revoked"
    stored = ReviewItem.objects.get()
    assert (stored.state, stored.close_reason) == (ReviewItemState.REVOKED, reason)
    entry = LedgerEntry.objects.latest("seq")
    assert entry.kind == "review_item.refused"
    assert reason in entry.payload["reasons"]
    assert fetch(APIClient(), item["audio_url"]).status_code == 410


def test_the_gate_refuses_once_the_transfer_rule_is_removed(draw, api_client_with_scopes):
    reviewable(jurisdiction="FR")
    rule = TransferRuleFactory(jurisdiction="FR", reviewer_location="DE")
    item = _one_item(draw, reviewer_location="DE")

    api_client_with_scopes("policies:write").delete(f"/api/v1/transfer-rules/{rule.pk}")
    response = fetch(APIClient(), item["audio_url"])

    assert response.status_code == 410
    assert ReviewItem.objects.get().close_reason == "transfer_not_allowed"


def test_the_gate_refuses_when_the_reviewer_moved(draw, reviewer, reviewer_client):
    reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)
    reviewer.location = "US"
    reviewer.save()

    response = fetch(reviewer_client, f"/api/v1/review-items/{item['id']}/audio")

    assert response.status_code == 410
    assert ReviewItem.objects.get().close_reason == "reviewer_moved"


def test_withdrawing_model_training_revokes_only_the_items_drawn_for_it(draw):
    profile = reviewable(granted={HUMAN: True, TRAINING: True}).profile
    reviewable(profile=profile)
    for_training = _one_item(draw, purpose=TRAINING, reviewer_location="DE")
    for_review = _one_item(draw, purpose=HUMAN, reviewer_location="DE")

    consent_set(
        profile=profile,
        purpose=TRAINING,
        granted=False,
        channel="app",
        notice_version="v1",
        actor="t",
    )

    assert fetch(APIClient(), for_training["audio_url"]).status_code == 410
    assert fetch(APIClient(), for_review["audio_url"]).status_code == 200


# --- annotations ----------------------------------------------------------------------


def test_the_reviewer_annotates_their_item_as_an_artefact_and_closes_it(
    draw, reviewer, reviewer_client
):
    recording = reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)

    response = reviewer_client.post(
        f"/api/v1/review-items/{item['id']}/annotations",
        {"text": "intent: lights.on"},
        format="json",
    )

    assert response.status_code == 201, response.content
    assert response.json()["state"] == "done"
    annotation = Artefact.objects.get(category="annotation")
    assert (annotation.recording, annotation.text) == (recording, "intent: lights.on")
    stored = ReviewItem.objects.get()
    assert (stored.state, stored.annotation) == (ReviewItemState.DONE, annotation)
    assert LedgerEntry.objects.latest("seq").payload["action"] == "annotate"
    gone = fetch(reviewer_client, f"/api/v1/review-items/{item['id']}/audio")
    assert (gone.status_code, gone.json()["error"]["code"]) == (410, "item_done")


def test_an_annotation_gets_the_retention_of_its_category(draw, reviewer, reviewer_client):
    from compliance.retention.services import retention_policy_create

    retention_policy_create(
        jurisdiction="DE",
        category="annotation",
        retention_days=30,
        actor="t",
        effective_from=timezone.now() - timedelta(days=400),
    )
    reviewable(recorded_at=timezone.now() - timedelta(days=1))
    item = _one_item(draw, reviewer=reviewer.user.username)

    reviewer_client.post(
        f"/api/v1/review-items/{item['id']}/annotations", {"text": "ok"}, format="json"
    )

    annotation = Artefact.objects.get(category="annotation")
    assert annotation.expires_at is not None
    assert annotation.expiry_basis.startswith("policy:")


def test_annotations_are_refused_to_others_and_on_closed_items(draw, reviewer, reviewer_client):
    recording = reviewable()
    item = _one_item(draw, reviewer=reviewer.user.username)
    url = f"/api/v1/review-items/{item['id']}/annotations"
    other = APIClient()
    other.force_login(ReviewerFactory(location="DE").user)

    foreign = other.post(url, {"text": "x"}, format="json")
    empty = reviewer_client.post(url, {"text": "  "}, format="json")
    _ineligible_by_consent(recording)
    revoked = reviewer_client.post(url, {"text": "x"}, format="json")

    assert foreign.status_code == 404
    assert (empty.status_code, empty.json()["error"]["code"]) == (400, "validation_error")
    assert (revoked.status_code, revoked.json()["error"]["code"]) == (410, "revoked")
    assert not Artefact.objects.filter(category="annotation").exists()


def test_the_signed_link_also_authorises_the_annotation(draw):
    reviewable()
    item = _one_item(draw, reviewer_location="DE")
    url = item["audio_url"].replace("/audio?", "/annotations?")

    response = APIClient().post(url, {"text": "noise only"}, format="json")

    assert response.status_code == 201, response.content
    assert Artefact.objects.get(category="annotation").text == "noise only"
    assert LedgerEntry.objects.latest("seq").actor == "link"
