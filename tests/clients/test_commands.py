from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from rest_framework.test import APIClient

from compliance.clients.models import ServiceClient
from compliance.ledger.models import LedgerEntry

pytestmark = pytest.mark.django_db


def _create(*args: str) -> str:
    out = StringIO()
    call_command("create_service_client", *args, stdout=out)
    return out.getvalue()


def test_the_command_prints_the_key_alone_on_its_last_line_and_the_key_works():
    output = _create("platform", "--scopes", "accounts:write, consents:read")

    key = output.rstrip("\n").splitlines()[-1]
    assert key.startswith("esk_")
    assert " " not in key
    client = ServiceClient.objects.get(name="platform")
    assert client.scopes == ["accounts:write", "consents:read"]
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    response = api.post(
        "/api/v1/accounts", {"external_id": "a", "jurisdiction": "DE"}, format="json"
    )
    assert response.status_code == 201, response.content
    entry = LedgerEntry.objects.get(kind="service_client.created")
    assert (entry.subject, entry.actor) == ("client:platform", "cli")
    assert key not in str(entry.payload)


def test_each_client_gets_its_own_key():
    first = _create("a", "--scopes", "reports:read").splitlines()[-1]
    second = _create("b", "--scopes", "reports:read").splitlines()[-1]

    assert first != second


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("x", "--scopes", "accounts:write,root"), "root"),
        (("x", "--scopes", "ACCOUNTS:WRITE"), "ACCOUNTS:WRITE"),
        (("", "--scopes", "accounts:write"), "name"),
        (("   ", "--scopes", "accounts:write"), "name"),
        (("x" * 101, "--scopes", "accounts:write"), "100"),
    ],
)
def test_bad_arguments_are_a_command_error_and_create_nothing(args, message):
    with pytest.raises(CommandError, match=message):
        _create(*args)

    assert not ServiceClient.objects.exists()
    assert not LedgerEntry.objects.exists()


def test_a_second_client_with_the_same_name_is_a_command_error():
    _create("platform", "--scopes", "accounts:write")

    with pytest.raises(CommandError, match="exists"):
        _create("platform", "--scopes", "reports:read")

    assert ServiceClient.objects.get().scopes == ["accounts:write"]


def test_the_scopes_argument_is_required():
    with pytest.raises(CommandError):
        _create("platform")
