"""One ownership filter per subject, one rule for all: an owner sees their own, another
user is told it does not exist (404, not 403), an officer sees it, a key with the scope
sees it, a key without the scope is refused (403) before anything is looked up."""

import pytest
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticDevice
from rest_framework.test import APIClient

from compliance.accounts.models import Profile
from compliance.accounts.selectors import profiles_visible_to
from compliance.edge.callers import ANONYMOUS, Caller, CallerKind, caller_of
from compliance.retention.models import DeletionRequest
from compliance.security.roles import OFFICERS_GROUP
from tests.factories import ProfileFactory, RecordingFactory, UserFactory

pytestmark = pytest.mark.django_db

# (path, the scope that opens it to a key); each names what the owner owns.
SUBJECTS = [
    pytest.param("/api/v1/profiles/p-own/consents", "consents:read", id="profile"),
    pytest.param("/api/v1/recordings/rec-own", "recordings:read", id="recording"),
    pytest.param("/api/v1/deletion-requests/del_own", "deletions:write", id="deletion request"),
]


@pytest.fixture
def owner():
    user = UserFactory()
    profile = ProfileFactory(external_id="p-own", account__user=user)
    RecordingFactory(external_id="rec-own", profile=profile)
    DeletionRequest.objects.create(public_id="del_own", profile=profile, requested_by="t")
    return user


def _signed_in(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def _officer() -> APIClient:
    user = UserFactory()
    user.groups.create(name=OFFICERS_GROUP)
    client = _signed_in(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = StaticDevice.objects.create(user=user).persistent_id
    session.save()
    return client


@pytest.mark.parametrize(("path", "scope"), SUBJECTS)
def test_the_owner_sees_their_own(owner, path, scope):
    assert _signed_in(owner).get(path).status_code == 200


@pytest.mark.parametrize(("path", "scope"), SUBJECTS)
def test_another_user_is_told_it_does_not_exist(owner, path, scope):
    response = _signed_in(UserFactory()).get(path)

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("path", "scope"), SUBJECTS)
def test_an_officer_sees_it(owner, path, scope):
    assert _officer().get(path).status_code == 200


@pytest.mark.parametrize(("path", "scope"), SUBJECTS)
def test_a_key_with_the_scope_sees_it(owner, api_client_with_scopes, path, scope):
    assert api_client_with_scopes(scope).get(path).status_code == 200


@pytest.mark.parametrize(("path", "scope"), SUBJECTS)
def test_a_key_without_the_scope_is_refused_with_403(owner, api_client_with_scopes, path, scope):
    response = api_client_with_scopes("reports:read").get(path)

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "insufficient_scope"


def test_the_filter_answers_rows_not_a_yes_or_no(owner):
    other = ProfileFactory(external_id="p-other", account__user=UserFactory())
    key = Caller(kind=CallerKind.KEY, actor="client:t", scopes=frozenset({"consents:read"}))
    unscoped = Caller(kind=CallerKind.KEY, actor="client:u", scopes=frozenset())

    def seen(caller: Caller) -> set[str]:
        rows = profiles_visible_to(caller, scope="consents:read")
        return set(rows.values_list("external_id", flat=True))

    assert seen(caller_of(owner)) == {"p-own"}
    assert seen(key) == {"p-own", other.external_id}
    assert seen(unscoped) == set()
    assert seen(ANONYMOUS) == set()
    assert Profile.objects.count() == 2


def test_an_officer_on_the_privacy_page_sees_only_their_own_profiles(owner):
    user = UserFactory()
    user.groups.create(name=OFFICERS_GROUP)
    officer = Caller(kind=CallerKind.OFFICER, actor=f"user:{user.pk}", user_id=user.pk)

    assert not profiles_visible_to(officer.as_end_user(), scope="consents:read").exists()
    assert profiles_visible_to(officer, scope="consents:read").count() == 1
