import pytest
from rest_framework.test import APIClient

from compliance.clients.authentication import InvalidApiKey, principal_for_header
from compliance.clients.models import ServiceClient
from compliance.clients.services import service_client_create, service_client_revoke
from compliance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db

PATH = "/api/v1/consent-defaults"


def _get(header: str | None):
    client = APIClient()
    if header is not None:
        client.credentials(HTTP_AUTHORIZATION=header)
    return client.get(PATH)


@pytest.fixture
def key() -> str:
    _, key = service_client_create(name="ops", scopes=["policies:write"])
    return key


def test_a_valid_key_authenticates_as_its_client(key):
    principal = principal_for_header(f"Api-Key {key}")

    assert principal is not None
    assert (principal.name, principal.scopes) == ("ops", frozenset({"policies:write"}))
    assert principal.actor == "client:ops"
    assert _get(f"Api-Key {key}").status_code == 200


def test_a_revoked_clients_key_is_401(key):
    service_client_revoke(client=ServiceClient.objects.get(name="ops"), actor="cli")

    response = _get(f"Api-Key {key}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"
    assert LedgerEntry.objects.latest("seq").kind == "service_client.revoked"


def test_revoking_twice_writes_one_ledger_entry(key):
    client = ServiceClient.objects.get(name="ops")
    service_client_revoke(client=client, actor="cli")
    entries = LedgerEntry.objects.count()

    service_client_revoke(client=client, actor="cli")

    assert LedgerEntry.objects.count() == entries


@pytest.mark.parametrize(
    "header",
    [
        "{key}",
        "Bearer {key}",
        "Token {key}",
        "api-key {key}",
        "Api-Key:{key}",
        "Api-Key",
        "",
    ],
)
def test_a_header_without_the_api_key_prefix_is_not_authenticated(key, header):
    response = _get(header.format(key=key))

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == "Api-Key"


def test_no_header_is_not_authenticated():
    response = _get(None)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "esk_not-a-key",
        "esk_" + "a" * 197,
        "esk_" + "a" * 10_000,
        "ключ-🔑",
        "esk_\x00",
    ],
)
def test_an_empty_unknown_long_or_odd_key_is_401(key, value):
    response = _get(f"Api-Key {value}")

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "authentication_failed"


def test_a_key_one_character_off_is_401(key):
    response = _get(f"Api-Key {key[:-1]}{'A' if key[-1] != 'A' else 'B'}")

    assert response.status_code == 401


def test_surrounding_whitespace_around_the_key_is_ignored(key):
    assert _get(f"Api-Key   {key}  ").status_code == 200


def test_the_key_itself_is_never_stored(key):
    client = ServiceClient.objects.get(name="ops")

    assert key not in (client.key_hash, client.key_prefix, client.name)
    assert client.key_hash != key
    assert key.startswith(client.key_prefix)


def test_principal_for_header_raises_for_an_over_long_key():
    with pytest.raises(InvalidApiKey):
        principal_for_header("Api-Key " + "a" * 201)


def test_a_header_for_another_scheme_is_left_to_other_authenticators():
    assert principal_for_header("Basic dXNlcjpwYXNz") is None
