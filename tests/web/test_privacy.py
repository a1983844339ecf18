"""The privacy page through Django's test client (the browser tests are in test_e2e.py)."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from compliance.consent.models import ConsentEvent, ConsentState
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Recording
from compliance.retention import deletion_requests
from compliance.retention.models import DeletionRequest
from compliance.retention.services import legal_hold_place
from tests.web.conftest import make_household

pytestmark = pytest.mark.django_db


def test_an_anonymous_visitor_is_sent_to_sign_in(client: Client):
    response = client.get("/privacy/")

    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)
    assert "next=/privacy/" in response["Location"]


def test_the_page_lists_the_users_profiles_children_included_and_no_one_elses(
    owner_client, household
):
    make_household("bob")

    response = owner_client.get("/privacy/")

    assert response.status_code == 200
    page = response.content.decode()
    assert "prof-alice" in page and "prof-alice-kid" in page
    assert "prof-bob" not in page
    assert "Always off for children" in page
    assert page.count('role="switch"') == 3  # adult: two purposes; child: model training


def test_withdrawing_consent_without_javascript_takes_effect_and_says_so(owner_client, household):
    owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/human_review/",
        {"granted": "true"},
    )

    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/human_review/",
        {"granted": "false"},
        follow=True,
    )

    assert response.status_code == 200
    state = ConsentState.objects.get(profile=household.adult, purpose="human_review")
    assert state.granted is False
    event = ConsentEvent.objects.filter(profile=household.adult).latest("id")
    assert (event.granted, event.channel, event.actor) == (
        False,
        "web",
        f"user:{household.user.pk}",
    )
    assert LedgerEntry.objects.filter(kind="consent.withdrawn").count() == 1
    assert "nobody will listen to recordings" in response.content.decode()
    assert "took effect immediately" in response.content.decode()


def test_a_switch_answers_json_to_the_pages_script(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/model_training/",
        {"granted": "true"},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 200
    assert response.json()["granted"] is True
    assert "model training" in response.json()["message"]


def test_granting_human_review_for_a_child_is_refused_on_the_page_not_a_500(
    owner_client, household
):
    url = f"/privacy/profiles/{household.child.external_id}/consents/human_review/"

    page = owner_client.post(url, {"granted": "true"})
    as_json = owner_client.post(url, {"granted": "true"}, HTTP_ACCEPT="application/json")

    assert page.status_code == 400
    assert "can never be granted human review" in page.content.decode()
    assert as_json.status_code == 400
    assert as_json.json() == {
        "error": {
            "code": "child_profile",
            "message": "A child's profile can never be granted human review.",
            "fields": {
                "granted": [
                    {
                        "code": "child_profile",
                        "message": "A child's profile can never be granted human review.",
                    }
                ]
            },
        }
    }
    assert not ConsentEvent.objects.filter(profile=household.child, granted=True).exists()


@pytest.mark.parametrize(
    "path",
    [
        "/privacy/profiles/prof-bob/recordings/",
        "/privacy/profiles/does-not-exist/recordings/",
    ],
)
def test_another_persons_profile_does_not_exist_for_the_user(owner_client, path):
    make_household("bob")

    assert owner_client.get(path).status_code == 404


def test_another_persons_consent_cannot_be_changed(owner_client):
    bob = make_household("bob")

    response = owner_client.post(
        f"/privacy/profiles/{bob.adult.external_id}/consents/human_review/", {"granted": "true"}
    )

    assert response.status_code == 404
    assert not ConsentEvent.objects.filter(profile=bob.adult).exists()


def test_an_unknown_purpose_or_a_missing_answer_is_a_4xx(owner_client, household):
    base = f"/privacy/profiles/{household.adult.external_id}/consents"

    assert owner_client.post(f"{base}/telepathy/", {"granted": "true"}).status_code == 404
    assert owner_client.post(f"{base}/human_review/", {}).status_code == 400
    assert owner_client.get(f"{base}/human_review/").status_code == 405


def test_a_retention_choice_that_deletes_nothing_is_saved_at_once(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/retention/",
        {"choice": "18_months"},
        follow=True,
    )

    household.adult.refresh_from_db()
    assert household.adult.retention_choice == "18_months"
    assert "Saved: 18 months" in response.content.decode()
    assert LedgerEntry.objects.filter(kind="retention_choice.changed").count() == 1


def test_dont_save_asks_first_because_it_deletes_what_is_kept(owner_client, household):
    url = f"/privacy/profiles/{household.adult.external_id}/retention/"

    asked = owner_client.post(url, {"choice": "dont_save"})

    household.adult.refresh_from_db()
    assert asked.status_code == 200
    assert "delete 3 recordings" in asked.content.decode()
    assert household.adult.retention_choice is None

    owner_client.post(url, {"choice": "dont_save", "confirm": "on"})

    household.adult.refresh_from_db()
    assert household.adult.retention_choice == "dont_save"


def test_an_unknown_retention_choice_is_a_400_with_a_message(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/retention/", {"choice": "forever"}
    )

    assert response.status_code == 400
    assert "Choose one of the options." in response.content.decode()


def test_recordings_show_date_transcript_and_who_heard_them_where(owner_client, household):
    from compliance.sampling.models import ReviewItem

    heard = household.recordings[0]
    now = timezone.now()
    ReviewItem.objects.create(
        id="item-1",
        recording=heard,
        purpose="human_review",
        reviewer_location="US",
        state="delivered",
        created_at=now - timedelta(hours=2),
        expires_at=now + timedelta(hours=6),
        delivered_at=now - timedelta(hours=1),
    )

    response = owner_client.get(f"/privacy/profiles/{household.adult.external_id}/recordings/")

    page = response.content.decode()
    assert response.status_code == 200
    assert "turn on the lights" in page and "set a timer for ten minutes" in page
    assert "tell me a story" not in page  # the child's profile has its own page
    heard_on = f"{now - timedelta(hours=1):%-d %b %Y}"
    assert f"Heard by a reviewer in the United States on {heard_on}" in page
    assert page.count("Not heard by anyone") == 2

    german = owner_client.get(
        f"/privacy/profiles/{household.adult.external_id}/recordings/",
        HTTP_ACCEPT_LANGUAGE="de",
    ).content.decode()
    assert "angehört (Standort der prüfenden Person: die Vereinigten Staaten)" in german


def test_a_date_range_is_confirmed_then_deleted_with_visible_progress(owner_client, household):
    today = timezone.now().date()
    url = f"/privacy/profiles/{household.adult.external_id}/deletions/"
    form = {
        "scope": "range",
        "date_from": (today - timedelta(days=6)).isoformat(),
        "date_to": (today - timedelta(days=1)).isoformat(),
    }

    asked = owner_client.post(url, form)

    assert asked.status_code == 200
    assert "Delete 2 recordings?" in asked.content.decode()
    assert not DeletionRequest.objects.exists()

    filed = owner_client.post(url, {**form, "confirm": "on"})

    request = DeletionRequest.objects.get()
    assert filed.status_code == 302
    assert filed["Location"] == f"/privacy/deletions/{request.public_id}/"
    assert request.recorded_from.date() == today - timedelta(days=6)
    assert request.recorded_to.date() == today - timedelta(days=1)
    progress = owner_client.get(filed["Location"])
    # No reload under a script's feet (web/deletion.js updates in place); without
    # JavaScript the page reloads itself, and the reader can stop that.
    assert "Refresh" not in progress
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in (
        progress.content.decode()
    )
    assert "web/deletion" in progress.content.decode()
    stopped = owner_client.get(filed["Location"] + "?updates=off").content.decode()
    assert 'http-equiv="refresh"' not in stopped

    deletion_requests.deletion_request_run(public_id=request.public_id)  # what the worker does

    done = owner_client.get(filed["Location"])
    assert "Refresh" not in done
    assert "2 recordings deleted" in done.content.decode()
    active = Recording.objects.filter(profile=household.adult, state="active")
    assert [r.external_id for r in active] == ["rec-alice-9"]


def test_one_recording_is_deleted_by_its_own_instant(owner_client, household):
    target = household.recordings[1]
    url = f"/privacy/profiles/{household.adult.external_id}/deletions/"

    owner_client.post(url, {"scope": "one", "recording": target.external_id, "confirm": "on"})
    request = DeletionRequest.objects.get()
    deletion_requests.deletion_request_run(public_id=request.public_id)

    assert request.recorded_from == request.recorded_to == target.recorded_at
    assert set(
        Recording.objects.filter(profile=household.adult, state="active").values_list(
            "external_id", flat=True
        )
    ) == {"rec-alice-2", "rec-alice-9"}


def test_everything_is_confirmed_with_the_count_first(owner_client, household):
    url = f"/privacy/profiles/{household.adult.external_id}/deletions/"

    asked = owner_client.post(url, {"scope": "all"})

    assert "Delete 3 recordings?" in asked.content.decode()


def test_a_backwards_range_is_a_400_on_the_form(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/deletions/",
        {"scope": "range", "date_from": "2026-03-10", "date_to": "2026-03-01"},
    )

    assert response.status_code == 400
    assert "must not lie before the first" in response.content.decode()
    assert not DeletionRequest.objects.exists()


def test_an_unreadable_day_is_named_alone_not_as_a_missing_range(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/deletions/",
        {"scope": "range", "date_from": "2026-13-45", "date_to": "yesterday"},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "Give a first day, a last day, or both." not in page
    assert not DeletionRequest.objects.exists()


def test_a_held_recording_is_reported_as_kept_on_the_progress_page(owner_client, household):
    legal_hold_place(
        profile=household.adult, reason="litigation", case_reference="C-1", actor="officer"
    )
    owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/deletions/",
        {"scope": "all", "confirm": "on"},
    )
    request = DeletionRequest.objects.get()
    deletion_requests.deletion_request_run(public_id=request.public_id)

    page = owner_client.get(f"/privacy/deletions/{request.public_id}/").content.decode()

    assert "0 recordings deleted" in page
    assert "3 recordings could not be deleted yet" in page


def test_someone_elses_deletion_request_does_not_exist_for_the_user(owner_client):
    bob = make_household("bob")
    bob_client = Client()
    bob_client.force_login(bob.user)
    bob_client.post(
        f"/privacy/profiles/{bob.adult.external_id}/deletions/", {"scope": "all", "confirm": "on"}
    )
    request = DeletionRequest.objects.get()

    assert owner_client.get(f"/privacy/deletions/{request.public_id}/").status_code == 404


def _delete_everything_of(owner_client, household) -> str:
    owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/deletions/",
        {"scope": "all", "confirm": "on"},
    )
    request = DeletionRequest.objects.get()
    deletion_requests.deletion_request_run(public_id=request.public_id)
    return owner_client.get(f"/privacy/deletions/{request.public_id}/").content.decode()


def _heading(page: str) -> str:
    return " ".join(page.split("<h1>", 1)[1].split("</h1>", 1)[0].split())


def test_a_deletion_partly_kept_by_a_hold_says_how_many_were_deleted_and_kept_and_why(
    owner_client, household
):
    now = timezone.now()
    legal_hold_place(  # covers rec-alice-5 only (recorded 5 days ago)
        profile=household.adult,
        recorded_from=now - timedelta(days=6),
        recorded_to=now - timedelta(days=4),
        reason="litigation",
        case_reference="C-1",
        actor="officer",
    )

    page = _delete_everything_of(owner_client, household)

    assert _heading(page) == "2 recordings deleted, 1 kept under a legal hold"
    assert "Your recordings are deleted" not in page
    assert "1 recording could not be deleted yet: it is kept under a legal hold" in page
    assert "needed as evidence" in page
    assert "Finished, 1 kept" in page
    assert "<title>Partly deleted" in page


def test_a_deletion_wholly_kept_by_a_hold_does_not_say_the_recordings_are_deleted(
    owner_client, household
):
    legal_hold_place(
        profile=household.adult, reason="litigation", case_reference="C-1", actor="officer"
    )

    page = _delete_everything_of(owner_client, household)

    assert _heading(page) == "Your recordings are kept under a legal hold: nothing was deleted"
    assert "Your recordings are deleted" not in page
    assert "<title>Kept under a legal hold" in page


def test_a_deletion_with_no_hold_says_the_recordings_are_deleted(owner_client, household):
    page = _delete_everything_of(owner_client, household)

    assert _heading(page) == "Your recordings are deleted"
    assert "legal hold" not in page


def test_a_switch_without_a_choice_answers_the_api_envelope_in_words_for_people(
    owner_client, household
):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/model_training/",
        {},
        HTTP_ACCEPT="application/json",
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert error["message"] == "Choose whether to turn this on or off."
    assert error["fields"] == {
        "granted": [{"code": "required", "message": "Choose whether to turn this on or off."}]
    }
