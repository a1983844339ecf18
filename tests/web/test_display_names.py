"""A profile's display name: its owner names it on the privacy page, the pages show the
name instead of the internal id, and the API answers as before."""

import pytest

from compliance.accounts.models import Profile
from tests.web.conftest import make_household

pytestmark = pytest.mark.django_db


def test_the_owner_names_a_profile_and_the_pages_show_the_name(owner_client, household):
    pid = household.adult.external_id

    response = owner_client.post(
        f"/privacy/profiles/{pid}/name/", {"display_name": "Kitchen speaker"}, follow=True
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "Saved: the profile prof-alice is now called “Kitchen speaker”." in page
    assert '<span class="profile-name">Kitchen speaker</span>' in page
    recordings = owner_client.get(f"/privacy/profiles/{pid}/recordings/").content.decode()
    assert 'Recordings of <span class="mono">Kitchen speaker</span>' in recordings
    assert Profile.objects.get(pk=household.adult.pk).display_name == "Kitchen speaker"


def test_a_name_longer_than_the_limit_is_refused_with_a_sentence(owner_client, household):
    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/name/", {"display_name": "x" * 61}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "That name was not saved: it is longer than 60 characters." in page
    assert 'maxlength="60"' in page
    assert f'value="{"x" * 61}"' in page  # what was typed, to be shortened, not lost
    assert Profile.objects.get(pk=household.adult.pk).display_name == ""


def test_a_name_with_a_direction_override_is_refused_for_that_and_kept_to_mend(
    owner_client, household
):
    Profile.objects.filter(pk=household.adult.pk).update(display_name="Old")

    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/name/",
        {"display_name": "Kitchen \u202espeaker"},
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert "it holds an invisible control character" in page
    assert 'value="Kitchen \u202espeaker"' in page
    assert Profile.objects.get(pk=household.adult.pk).display_name == "Old"


def test_an_emoji_sequence_is_a_name(owner_client, household):
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467 Family speaker"

    response = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/name/", {"display_name": family}
    )

    assert response.status_code == 302
    assert Profile.objects.get(pk=household.adult.pk).display_name == family


def test_nobody_names_someone_elses_profile(owner_client, household):
    bob = make_household("bob")

    response = owner_client.post(
        f"/privacy/profiles/{bob.adult.external_id}/name/", {"display_name": "Mine now"}
    )

    assert response.status_code == 404
    assert Profile.objects.get(pk=bob.adult.pk).display_name == ""


def test_an_empty_name_shows_the_id_again(owner_client, household):
    household.adult.display_name = "Old"
    household.adult.save(update_fields=["display_name"])

    owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/name/", {"display_name": ""}
    )

    page = owner_client.get("/privacy/").content.decode()
    assert 'Voice profile <span class="mono">prof-alice</span>' in page


def test_the_api_keeps_its_contract_and_does_not_show_the_name(api_client_with_scopes, household):
    household.adult.display_name = "Kitchen speaker"
    household.adult.save(update_fields=["display_name"])
    client = api_client_with_scopes("consents:read")

    response = client.get(f"/api/v1/profiles/{household.adult.external_id}/consents")

    assert response.status_code == 200
    assert "Kitchen speaker" not in response.content.decode()
