import json
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import F
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Artefact, Recording
from compliance.retention import deletion_requests, purge
from compliance.retention.models import DeletionRequest
from compliance.retention.services import deletion_request_create, legal_hold_place
from tests.factories import ProfileFactory
from tests.faults.hooks import Killed, purge_killed_at
from tests.retention.conftest import stored_files

pytestmark = pytest.mark.django_db


def _run(request: DeletionRequest) -> DeletionRequest:
    deletion_requests.deletion_request_run(public_id=request.public_id)
    request.refresh_from_db()
    return request


def test_a_deletion_request_for_a_date_range_deletes_that_range_only(ingest):
    profile = ProfileFactory()
    inside = [ingest(profile, days_ago=d) for d in (3, 4, 5)]
    outside = [ingest(profile, days_ago=d) for d in (1, 10)]
    other_profile = ingest(days_ago=4)
    now = timezone.now()

    request = deletion_request_create(
        profile=profile,
        recorded_from=now - timedelta(days=6),
        recorded_to=now - timedelta(days=2),
        actor="test",
    )
    request = _run(request)

    assert request.status == "done"
    assert (request.recordings_deleted, request.recordings_held) == (3, 0)
    assert {r.state for r in Recording.objects.filter(pk__in=[r.pk for r in inside])} == {"purged"}
    assert Recording.objects.filter(pk__in=[r.pk for r in outside], state="active").count() == 2
    assert Recording.objects.get(pk=other_profile.pk).state == "active"
    assert {r.purge_reason for r in Recording.objects.filter(state="purged")} == {
        "deletion_request"
    }
    done = LedgerEntry.objects.get(kind="deletion_request.done")
    assert request.receipt == done.hash


def test_deleting_everything_removes_files_and_recordings_without_artefacts(ingest):
    profile = ProfileFactory()
    with_audio = ingest(profile)
    bare = ingest(profile, audio=False)
    bare.artefacts.all().delete()  # a recording registered with nothing stored
    key = with_audio.artefacts.get(category="audio").storage_key

    request = _run(
        deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t")
    )

    assert request.recordings_deleted == 2
    assert key not in stored_files(settings.MEDIA_ROOT)
    assert not Recording.objects.filter(profile=profile, state="active").exists()


def test_a_held_profiles_request_is_reported_as_blocked_not_dropped(ingest):
    profile = ProfileFactory()
    ingest(profile, days_ago=3)
    ingest(profile, days_ago=30)
    hold = legal_hold_place(
        profile=profile,
        recorded_from=timezone.now() - timedelta(days=10),
        reason="litigation",
        case_reference="C-7",
        actor="test",
    )
    request = _run(
        deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t")
    )

    assert request.status == "done"
    assert (request.recordings_deleted, request.recordings_held) == (1, 1)
    assert request.holds == [hold.pk]
    assert Recording.objects.filter(profile=profile, state="active").count() == 1


def test_running_a_request_twice_does_nothing_the_second_time(ingest):
    profile = ProfileFactory()
    ingest(profile)
    request = _run(
        deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t")
    )
    assert deletion_requests.deletion_request_run(public_id=request.public_id) is None
    assert LedgerEntry.objects.filter(kind="deletion_request.done").count() == 1


def test_a_lapsed_request_is_found_by_the_sweep(ingest):
    profile = ProfileFactory()
    ingest(profile)
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    DeletionRequest.objects.filter(pk=request.pk).update(
        status="running", lease_until=timezone.now() - timedelta(seconds=1), attempts=1
    )
    assert deletion_requests.deletion_requests_sweep() == [request.public_id]
    assert _run(request).recordings_deleted == 1


# --- over the API -------------------------------------------------------------


def test_a_client_requests_a_deletion_and_polls_its_status(platform, ingest):
    profile = ProfileFactory()
    ingest(profile, days_ago=2)
    response = platform.post(
        f"/api/v1/profiles/{profile.external_id}/deletion-requests", {}, format="json"
    )
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "received"
    deletion_requests.deletion_request_run(public_id=body["id"])  # what the worker does
    status = platform.get(f"/api/v1/deletion-requests/{body['id']}").json()
    assert status["status"] == "done"
    assert status["recordings_deleted"] == 1
    assert status["blocked_by_hold"] is False
    assert len(status["receipt"]) == 64


def test_the_owner_may_request_deletion_but_nobody_else(ingest):
    owner, stranger = (
        get_user_model().objects.create(username="o"),
        get_user_model().objects.create(username="s"),
    )
    profile = ProfileFactory(account__user=owner)
    as_owner, as_stranger = APIClient(), APIClient()
    as_owner.force_authenticate(owner)
    as_stranger.force_authenticate(stranger)
    url = f"/api/v1/profiles/{profile.external_id}/deletion-requests"

    refused = as_stranger.post(url, {}, format="json")
    assert refused.status_code == 404
    assert not DeletionRequest.objects.exists()

    accepted = as_owner.post(url, {}, format="json")
    assert accepted.status_code == 202
    request_id = accepted.json()["id"]
    assert as_stranger.get(f"/api/v1/deletion-requests/{request_id}").status_code == 404
    assert as_owner.get(f"/api/v1/deletion-requests/{request_id}").status_code == 200


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"from": "2026-02-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"}, "from"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2026-01-01T00:00:00"}, "to"),  # naive
        ({"from": 12}, "from"),
    ],
)
def test_bad_deletion_requests_are_refused_and_write_nothing(platform, body, field):
    profile = ProfileFactory()
    response = platform.post(
        f"/api/v1/profiles/{profile.external_id}/deletion-requests", body, format="json"
    )
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["fields"]
    assert not DeletionRequest.objects.exists()


def test_a_deletion_request_for_an_unknown_profile_is_404(platform):
    response = platform.post("/api/v1/profiles/nobody/deletion-requests", {}, format="json")
    assert response.status_code == 404


def test_a_deletion_requests_claim_taken_over_by_the_sweep_keeps_its_reason(ingest, monkeypatch):
    """A worker dies after claiming a request's artefacts; the periodic purge takes the
    claim over: the recordings go as deleted on request, and the receipt counts them."""
    import time_machine

    profile = ProfileFactory()
    recordings = [ingest(profile), ingest(profile)]
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )

    def die(claimed):
        raise SystemExit("killed after the claim")

    monkeypatch.setattr(purge, "_unlink", die)
    with pytest.raises(SystemExit):
        deletion_requests.deletion_request_run(public_id=request.public_id)
    monkeypatch.undo()

    later = (
        timezone.now()
        + max(purge.purge_lease(), deletion_requests.DELETION_LEASE)
        + timedelta(seconds=1)
    )
    with time_machine.travel(later, tick=False):
        assert purge.purge_expired().taken_over == 4  # audio and transcript of each
        assert deletion_requests.deletion_requests_sweep() == [request.public_id]
        done = _run(request)

    for recording in recordings:
        recording.refresh_from_db()
        assert (recording.state, recording.purge_reason) == ("purged", "deletion_request")
        assert set(recording.artefacts.values_list("purge_reason", flat=True)) == {
            "deletion_request"
        }
    assert (done.status, done.recordings_deleted) == ("done", 2)


def test_a_recording_deleted_without_artefacts_becomes_the_same_tombstone_as_a_purged_one(
    ingest,
):
    profile = ProfileFactory()
    bare = ingest(profile, audio=False)
    bare.artefacts.all().delete()
    Recording.objects.filter(pk=bare.pk).update(sensitive=True, false_wake=True)

    _run(deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t"))

    bare.refresh_from_db()
    assert (bare.state, bare.purge_reason, bare.sensitive, bare.false_wake) == (
        "purged",
        "deletion_request",
        False,
        False,
    )


@pytest.mark.parametrize("scope", ["profile", "account", "range"])
def test_a_hold_keeps_a_recording_without_artefacts_from_a_deletion_request(ingest, scope):
    profile = ProfileFactory()
    bare = ingest(profile, audio=False, days_ago=3)
    bare.artefacts.all().delete()  # registered with nothing stored
    outside = ingest(profile, audio=False, days_ago=30)
    outside.artefacts.all().delete()
    hold = legal_hold_place(
        profile=profile if scope != "account" else None,
        account=profile.account if scope == "account" else None,
        recorded_from=timezone.now() - timedelta(days=10) if scope == "range" else None,
        reason="litigation",
        case_reference="C-9",
        actor="test",
    )

    request = _run(
        deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t")
    )

    bare.refresh_from_db()
    assert bare.state == "active"
    assert request.recordings_held == (1 if scope == "range" else 2)
    assert request.holds == [hold.pk]
    outside.refresh_from_db()
    assert outside.state == ("purged" if scope == "range" else "active")


def test_a_deletion_request_leaves_the_files_of_what_a_hold_keeps(ingest):
    profile = ProfileFactory()
    held = ingest(profile, days_ago=3)
    doomed = ingest(profile, days_ago=30)
    held_key = held.artefacts.get(category="audio").storage_key
    doomed_key = doomed.artefacts.get(category="audio").storage_key
    legal_hold_place(
        profile=profile,
        recorded_from=timezone.now() - timedelta(days=10),
        reason="litigation",
        case_reference="C-8",
        actor="test",
    )

    request = _run(
        deletion_request_create(profile=profile, recorded_from=None, recorded_to=None, actor="t")
    )

    assert (request.recordings_deleted, request.recordings_held) == (1, 1)
    files = stored_files(settings.MEDIA_ROOT)
    assert held_key in files and doomed_key not in files
    assert set(held.artefacts.values_list("state", "purge_attempt")) == {("active", 0)}


def test_a_deletion_request_includes_a_recording_made_exactly_at_its_start(ingest):
    profile = ProfileFactory()
    at_start = ingest(profile, days_ago=5)
    request = _run(
        deletion_request_create(
            profile=profile,
            recorded_from=at_start.recorded_at,
            recorded_to=at_start.recorded_at + timedelta(days=1),
            actor="t",
        )
    )
    at_start.refresh_from_db()
    assert (at_start.state, request.recordings_deleted) == ("purged", 1)
    assert set(at_start.artefacts.values_list("state", flat=True)) == {"purged"}


def test_a_stale_workers_finish_does_not_close_a_request_another_worker_took_over(ingest):
    profile = ProfileFactory()
    ingest(profile)
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    now = timezone.now()
    stale = deletion_requests._claim_request(request.public_id, now)
    current = deletion_requests._claim_request(
        request.public_id, now + deletion_requests.DELETION_LEASE + timedelta(seconds=1)
    )
    assert (stale.attempts, current.attempts) == (1, 2)

    assert deletion_requests._deletion_request_finish(stale, stale.attempts) is None

    request.refresh_from_db()
    assert request.status == "running"
    assert not LedgerEntry.objects.filter(kind="deletion_request.done").exists()


def test_a_worker_whose_request_was_taken_over_stops_after_its_batch(ingest, monkeypatch):
    profile = ProfileFactory()
    recordings = [ingest(profile, audio=False) for _ in range(3)]
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    real_batch = purge.purge_batch

    def one_at_a_time_then_taken_over(candidates, **kwargs):
        result = real_batch(candidates, **{**kwargs, "limit": 1})
        # meanwhile the lease lapsed and another worker claimed the request
        DeletionRequest.objects.filter(pk=request.pk).update(attempts=F("attempts") + 1)
        return result

    monkeypatch.setattr(deletion_requests, "purge_batch", one_at_a_time_then_taken_over)

    assert deletion_requests.deletion_request_run(public_id=request.public_id) is None
    transcripts = Artefact.objects.filter(recording__in=recordings)
    assert transcripts.filter(state="purged").count() == 1
    assert transcripts.filter(state="active").count() == 2


def test_a_rerun_request_finishes_what_its_dead_predecessor_had_claimed(ingest):
    profile = ProfileFactory()
    recordings = [ingest(profile) for _ in range(2)]
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )

    with purge_killed_at("claimed"), pytest.raises(Killed):
        deletion_requests.deletion_request_run(public_id=request.public_id)
    assert Artefact.objects.filter(state="purging").count() == 4
    DeletionRequest.objects.filter(pk=request.pk).update(
        lease_until=timezone.now() - timedelta(seconds=1)
    )

    done = deletion_requests.deletion_request_run(public_id=request.public_id)

    assert (done.status, done.recordings_deleted) == ("done", 2)
    assert set(
        Artefact.objects.filter(recording__in=recordings).values_list("state", flat=True)
    ) == {"purged"}


@pytest.mark.parametrize(
    "content_type", ["multipart/form-data; boundary=zz", "multipart/form-data; boundary=other"]
)
def test_a_range_sent_under_a_multipart_header_is_refused_not_read_as_everything(
    platform, ingest, content_type
):
    """A JSON body under a multipart header parses as no fields at all: taken as given,
    it would be a request for everything (both bounds are optional)."""
    profile = ProfileFactory()
    kept = ingest(profile, days_ago=10)

    response = platform.generic(
        "POST",
        f"/api/v1/profiles/{profile.external_id}/deletion-requests",
        json.dumps({"from": timezone.now().isoformat()}),
        content_type=content_type,
    )

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "malformed_request"
    assert not DeletionRequest.objects.exists()
    kept.refresh_from_db()
    assert kept.state == "active"


def test_a_deleted_recording_answers_as_a_tombstone_with_nothing_personal(platform, ingest):
    """Its id, the purge's time, reason and policy; not whose it was, when it was said,
    what was said or its flags."""
    profile = ProfileFactory()
    recording = ingest(profile, days_ago=2)
    Recording.objects.filter(pk=recording.pk).update(sensitive=True)
    deletion = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    deletion_requests.deletion_request_run(public_id=deletion.public_id)

    body = platform.get(f"/api/v1/recordings/{recording.external_id}").json()

    assert body["state"] == "purged"
    assert body["purged_at"] and body["purge_reason"] == "deletion_request"
    assert body["purge_policy"] == (Recording.objects.get(pk=recording.pk).purge_policy or None)
    assert body["id"] == body["external_id"] == recording.external_id
    assert (body["profile"], body["recorded_at"], body["transcript"]) == (None, None, None)
    assert (body["flags"], body["artefacts"]) == ([], [])
    assert profile.external_id not in json.dumps(body)


def test_a_live_recording_answers_no_purge_fields(platform, ingest):
    recording = ingest()

    body = platform.get(f"/api/v1/recordings/{recording.external_id}").json()

    assert (body["purged_at"], body["purge_reason"], body["purge_policy"]) == (None, None, None)
    assert body["profile"] == recording.profile.external_id
    assert body["transcript"] == "turn on the lights"


def test_a_range_sent_chunked_is_refused_not_read_as_everything(platform, ingest):
    """A chunked body has no Content-Length, and Django reads a body by it: the range
    would reach the view as no body at all, a request for everything."""
    profile = ProfileFactory()
    kept = ingest(profile, days_ago=10)

    response = platform.post(
        f"/api/v1/profiles/{profile.external_id}/deletion-requests",
        {"from": timezone.now().isoformat()},
        format="json",
        HTTP_TRANSFER_ENCODING="chunked",
    )

    assert response.status_code == 411, response.content
    assert response.json()["error"]["code"] == "length_required"
    assert not DeletionRequest.objects.exists()
    kept.refresh_from_db()
    assert kept.state == "active"
