from io import StringIO
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp

from compliance.security.roles import OFFICERS_GROUP
from tests.factories import ReviewerFactory

from .conftest import PASSWORD, person

pytestmark = pytest.mark.django_db


def run(*args: str) -> list[str]:
    out = StringIO()
    call_command("create_officer", *args, stdout=out)
    return out.getvalue().splitlines()


def code_from_uri(uri: str) -> str:
    """What an authenticator app shows after scanning `uri`."""
    from base64 import b32decode

    query = parse_qs(urlparse(uri).query)
    secret = query["secret"][0]
    key = b32decode(secret + "=" * (-len(secret) % 8))
    return str(totp(key, step=int(query["period"][0]))).zfill(int(query["digits"][0]))


def test_create_officer_prints_the_provisioning_uri_last_and_the_officer_can_sign_in():
    lines = run("olivia", "--email", "olivia@example.org")

    uri = lines[-1]
    password = next(line.split(": ", 1)[1] for line in lines if line.startswith("password"))
    assert uri.startswith("otpauth://totp/")
    codes = [line.strip() for line in lines if line.startswith("  ")]
    assert len(codes) == 10
    client = Client()
    response = client.post(
        "/accounts/login/",
        {"username": "olivia", "password": password, "otp_token": code_from_uri(uri)},
    )
    assert response.status_code == 302
    assert DEVICE_ID_SESSION_KEY in client.session
    assert client.get("/admin/").status_code == 200


def test_create_officer_for_an_existing_user_keeps_their_password():
    user = person("olivia")

    lines = run("olivia", "--existing")

    user.refresh_from_db()
    assert user.check_password(PASSWORD)
    assert not any(line.startswith("password") for line in lines)
    assert user.groups.filter(name=OFFICERS_GROUP).exists()


def test_a_reviewer_gets_a_second_factor_without_becoming_an_officer():
    reviewer = ReviewerFactory(user=person("rita"))

    lines = run("rita", "--second-factor-only", "--backup-codes", "2")

    assert lines[0].startswith("user rita")
    assert not reviewer.user.groups.exists()
    assert len([line for line in lines if line.startswith("  ")]) == 2


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["ghost", "--existing"], "No user"),
        (["olivia"], "exists"),
        (["olivia", "--existing"], "second factor already"),
        (["olivia", "--backup-codes", "99"], "--backup-codes"),
    ],
)
def test_create_officer_refusals_are_command_errors(args, message):
    person("olivia")
    call_command("create_officer", "olivia", "--existing", stdout=StringIO())

    with pytest.raises(CommandError, match=message):
        run(*args)
