import pytest
from django.core.exceptions import ImproperlyConfigured
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from compliance.edge.permissions import find_for_caller, scope_or_officer
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/profiles/p-1/consents",
        "/api/v1/profiles/p-1/retention",
        "/api/v1/legal-holds",
        "/api/v1/retention-policies",
    ],
)
def test_head_is_allowed_with_the_scope_get_needs(platform, path):
    ProfileFactory(external_id="p-1")

    assert platform.get(path).status_code == 200
    head = platform.head(path)

    assert head.status_code == 200, head.content
    assert head.content == b""


def test_head_without_gets_scope_is_refused(api_client_with_scopes):
    ProfileFactory(external_id="p-1")
    client = api_client_with_scopes("recordings:write")

    assert client.head("/api/v1/profiles/p-1/consents").status_code == 403


def test_a_head_finds_the_row_under_the_scope_get_needs(api_client_with_scopes):
    """The row is looked up under the scope the permission asked for: a key that may
    GET a consent may HEAD it (HEAD reads what GET reads), not be told it does not exist."""
    ProfileFactory(external_id="p-1")
    reader = api_client_with_scopes("consents:read")

    assert reader.get("/api/v1/profiles/p-1/consents/human_review").status_code == 200
    assert reader.head("/api/v1/profiles/p-1/consents/human_review").status_code == 200


def test_a_view_whose_permission_names_no_scope_finds_no_row():
    """`find_for_caller` refuses to guess a scope: a view that names none for the method
    is a mistake of the code, said as such, never an unfiltered lookup."""

    class NoScopeForPut(APIView):
        permission_classes = [scope_or_officer({"GET": "consents:read"}, owner=True)]

    request = Request(APIRequestFactory().put("/anything"))
    asked = []

    with pytest.raises(ImproperlyConfigured, match="NoScopeForPut requires no scope for PUT"):
        find_for_caller(request, NoScopeForPut(), lambda **key: asked.append(key))
    assert asked == []
