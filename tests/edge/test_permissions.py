import pytest

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
