"""The sign-in page's contract: one form (username, password, otp_token), a second
factor for whoever has one and must have one, throttled failures, `?next=`."""

import re

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.plugins.otp_static.models import StaticToken

from compliance.security.services import second_factor_issue
from tests.factories import ReviewerFactory

from .conftest import PASSWORD, app_code, officer_without_device, person

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def sign_in(client: Client, username: str, password: str = PASSWORD, otp_token: str = "", **kw):
    return client.post(
        LOGIN, {"username": username, "password": password, "otp_token": otp_token}, **kw
    )


def signed_in_as(client: Client) -> str | None:
    return client.session.get(SESSION_KEY)


def verified(client: Client) -> bool:
    return DEVICE_ID_SESSION_KEY in client.session


# --- the page -------------------------------------------------------------------------


def test_the_page_is_one_form_with_labelled_fields_and_the_code_field_always_there(client):
    response = client.get(LOGIN)

    assert response.status_code == 200
    html = response.content.decode()
    for name, label in [
        ("username", "Username"),
        ("password", "Password"),
        ("otp_token", "Authentication code (officers and reviewers)"),
    ]:
        assert f'<label for="id_{name}">{label}</label>' in html
        assert f'name="{name}"' in html
    # the sign-in form, and the language switcher every page has
    assert html.count("<form") == 1 + html.count("/accounts/logout/") + html.count(
        'action="/language/"'
    )
    assert 'name="viewport" content="width=device-width' in html
    assert 'autocomplete="one-time-code"' in html
    assert "<script" not in html.split("<main", 1)[1]  # works without JavaScript
    assert response["Cache-Control"].startswith("max-age=0")


def test_next_is_carried_through_the_form(client):
    html = client.get(LOGIN + "?next=/privacy/").content.decode()

    assert '<input type="hidden" name="next" value="/privacy/">' in html


# --- end users (no second factor) ------------------------------------------------------


def test_an_end_user_without_a_device_signs_in_leaving_the_code_empty(client):
    user = person("erin")

    response = sign_in(client, "erin")

    assert response.status_code == 302
    assert response["Location"] == "/privacy/"  # an end user lands on their privacy page
    assert signed_in_as(client) == str(user.pk)
    assert not verified(client)


def test_the_sign_in_honours_a_safe_next(client):
    person("erin")

    response = client.post(
        LOGIN + "?next=/privacy/", {"username": "erin", "password": PASSWORD, "otp_token": ""}
    )

    assert response["Location"] == "/privacy/"


@pytest.mark.parametrize(
    "next_url", ["https://evil.example/", "//evil.example/x", "javascript:alert(1)"]
)
def test_the_sign_in_ignores_a_next_that_leaves_the_site(client, next_url):
    person("erin")

    response = client.post(
        LOGIN, {"username": "erin", "password": PASSWORD, "otp_token": "", "next": next_url}
    )

    assert response.status_code == 302
    assert response["Location"] == "/privacy/"


def test_a_wrong_password_fails_with_a_clear_message_and_no_session(client):
    person("erin")

    response = sign_in(client, "erin", password="wrong")

    assert response.status_code == 200
    assert "The username or password is not correct." in response.content.decode()
    assert signed_in_as(client) is None


def test_an_unknown_user_gets_the_same_message_as_a_wrong_password(client):
    response = sign_in(client, "nobody", password="wrong")

    assert "The username or password is not correct." in response.content.decode()


def test_the_password_and_code_are_never_sent_back(client):
    person("erin")

    html = sign_in(client, "erin", password="s3cret-typed", otp_token="123456").content.decode()

    assert "s3cret-typed" not in html
    assert "123456" not in html
    assert 'value="erin"' in html


def test_an_inactive_user_cannot_sign_in(client):
    person("erin", is_active=False)

    response = sign_in(client, "erin")

    assert response.status_code == 200
    assert signed_in_as(client) is None


def test_an_empty_form_is_a_400_with_a_message(client):
    response = client.post(LOGIN, {})

    assert response.status_code == 400
    assert "Enter your username and password." in response.content.decode()


def test_the_form_needs_its_csrf_token():
    person("erin")
    client = Client(enforce_csrf_checks=True)

    refused = sign_in(client, "erin")
    page = client.get(LOGIN)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())[1]
    accepted = client.post(
        LOGIN,
        {"username": "erin", "password": PASSWORD, "otp_token": "", "csrfmiddlewaretoken": token},
    )

    assert refused.status_code == 403
    assert accepted.status_code == 302


# --- officers (a second factor) ---------------------------------------------------------


def test_an_officer_with_the_app_code_gets_a_verified_session(client, officer):
    response = sign_in(client, "olivia", otp_token=app_code(officer.user))

    assert response.status_code == 302
    assert signed_in_as(client) == str(officer.user.pk)
    assert verified(client)


def test_an_officer_lands_on_the_dashboard(client, officer):
    response = sign_in(client, "olivia", otp_token=app_code(officer.user))

    assert response["Location"] == "/officer/"
    assert client.get(response["Location"]).status_code == 200


def test_an_officer_with_a_next_lands_there(client, officer):
    response = client.post(
        LOGIN + "?next=/privacy/",
        {"username": "olivia", "password": PASSWORD, "otp_token": app_code(officer.user)},
    )

    assert response["Location"] == "/privacy/"


def test_an_end_user_lands_on_their_privacy_page(client):
    person("erin")

    response = sign_in(client, "erin")

    assert response["Location"] == "/privacy/"
    assert client.get(response["Location"]).status_code == 200


def test_a_code_typed_with_spaces_is_accepted(client, officer):
    code = app_code(officer.user)

    sign_in(client, "olivia", otp_token=f" {code[:3]} {code[3:]} ")

    assert verified(client)


def test_an_officer_without_the_code_is_refused_with_a_clear_message(client, officer):
    response = sign_in(client, "olivia")

    assert response.status_code == 200
    assert "enter the code from your authenticator app" in response.content.decode()
    assert signed_in_as(client) is None


def test_an_officer_with_a_wrong_code_is_refused(client, officer):
    wrong = str((int(app_code(officer.user)) + 1) % 1_000_000).zfill(6)

    response = sign_in(client, "olivia", otp_token=wrong)

    assert "The authentication code is not correct" in response.content.decode()
    assert signed_in_as(client) is None


def test_a_right_code_with_a_wrong_password_is_refused(client, officer):
    response = sign_in(client, "olivia", password="wrong", otp_token=app_code(officer.user))

    assert "The username or password is not correct." in response.content.decode()
    assert signed_in_as(client) is None


def test_an_app_code_works_once(officer):
    code = app_code(officer.user)
    first, second = Client(), Client()

    sign_in(first, "olivia", otp_token=code)
    replay = sign_in(second, "olivia", otp_token=code)

    assert verified(first)
    assert "has been used already" in replay.content.decode()
    assert signed_in_as(second) is None


def test_a_backup_code_signs_in_once_and_is_then_gone(officer):
    code = officer.backup_codes[0]
    first, second = Client(), Client()

    sign_in(first, "olivia", otp_token=code.upper())
    sign_in(second, "olivia", otp_token=code)

    assert verified(first)
    assert signed_in_as(second) is None
    assert not StaticToken.objects.filter(token=code).exists()
    assert StaticToken.objects.filter(device__user=officer.user).count() == 9


def test_an_officer_without_any_device_is_refused(client):
    officer_without_device("oscar")

    response = sign_in(client, "oscar")

    assert "none is set up for it" in response.content.decode()
    assert signed_in_as(client) is None


@pytest.mark.parametrize("kind", ["reviewer", "staff", "superuser"])
def test_reviewers_and_staff_must_have_a_second_factor(client, kind):
    if kind == "reviewer":
        ReviewerFactory(user=person("rita"))
    else:
        person("rita", is_staff=True, is_superuser=kind == "superuser")

    refused = sign_in(client, "rita")
    setup = second_factor_issue(username="rita", create=False, officer=False)
    accepted = sign_in(client, "rita", otp_token=app_code(setup.user))

    assert "none is set up for it" in refused.content.decode()
    assert accepted.status_code == 302
    assert verified(client)


def test_an_end_user_with_a_device_must_give_its_code(client):
    person("erin")
    setup = second_factor_issue(username="erin", create=False, officer=False)

    refused = sign_in(client, "erin")
    accepted = sign_in(client, "erin", otp_token=setup.backup_codes[0])

    assert refused.status_code == 200
    assert accepted.status_code == 302
    assert verified(client)


def test_signing_in_replaces_the_session_so_it_cannot_be_fixed_in_advance(client, officer):
    client.get(LOGIN)
    session = client.session
    session["planted"] = "by someone else"
    session.save()
    before = client.cookies["sessionid"].value

    sign_in(client, "olivia", otp_token=app_code(officer.user))

    assert client.cookies["sessionid"].value != before


# --- throttling -------------------------------------------------------------------------


def test_after_five_failures_even_the_right_password_is_refused_for_a_while(client, settings):
    person("erin")
    for _ in range(settings.SIGN_IN_MAX_FAILURES):
        sign_in(client, "erin", password="wrong")

    response = sign_in(client, "erin")

    assert response.status_code == 429
    assert "Too many failed sign-ins" in response.content.decode()
    assert signed_in_as(client) is None


def test_failed_codes_count_toward_the_throttle(client, officer, settings):
    for _ in range(settings.SIGN_IN_MAX_FAILURES):
        sign_in(client, "olivia", otp_token="000000")

    response = sign_in(client, "olivia", otp_token=app_code(officer.user))

    assert response.status_code == 429


def test_the_throttle_is_per_username_and_address(client, settings):
    person("erin")
    person("frank")
    for _ in range(settings.SIGN_IN_MAX_FAILURES):
        sign_in(client, "erin", password="wrong")

    other_user = sign_in(Client(), "frank")
    other_address = sign_in(Client(REMOTE_ADDR="10.0.0.9"), "erin")

    assert other_user.status_code == 302
    assert other_address.status_code == 302


def test_the_throttle_counts_usernames_case_insensitively(client, settings):
    person("erin")
    for i in range(settings.SIGN_IN_MAX_FAILURES):
        sign_in(client, "erin" if i % 2 else "ERIN", password="wrong")

    assert sign_in(client, "erin").status_code == 429


def test_an_address_trying_many_usernames_is_throttled(client, settings):
    settings.SIGN_IN_MAX_FAILURES_PER_ADDRESS = 3
    person("erin")
    for name in ["a", "b", "c"]:
        sign_in(client, name, password="wrong")

    assert sign_in(client, "erin").status_code == 429


def test_the_window_passes(client, settings, time_machine):
    person("erin")
    time_machine.move_to("2030-01-01T00:00:00Z", tick=False)
    for _ in range(settings.SIGN_IN_MAX_FAILURES):
        sign_in(client, "erin", password="wrong")
    assert sign_in(client, "erin").status_code == 429

    time_machine.move_to("2030-01-01T00:15:01Z", tick=False)

    assert sign_in(client, "erin").status_code == 302


def test_a_success_resets_the_count(client, settings):
    person("erin")
    for _ in range(settings.SIGN_IN_MAX_FAILURES - 1):
        sign_in(client, "erin", password="wrong")
    assert sign_in(client, "erin").status_code == 302
    client.post("/accounts/logout/")

    for _ in range(settings.SIGN_IN_MAX_FAILURES - 1):
        sign_in(client, "erin", password="wrong")

    assert sign_in(client, "erin").status_code == 302


def test_behind_trusted_proxies_the_address_is_the_one_they_saw(settings):
    settings.TRUSTED_PROXY_HOPS = 1
    person("erin")
    attacker = Client(REMOTE_ADDR="10.0.0.1")
    for i in range(settings.SIGN_IN_MAX_FAILURES):
        # a forged left-hand entry changes nothing: the proxy's own entry is last
        attacker.post(
            LOGIN,
            {"username": "erin", "password": "wrong", "otp_token": ""},
            HTTP_X_FORWARDED_FOR=f"1.2.3.{i}, 203.0.113.7",
        )

    same = attacker.post(
        LOGIN,
        {"username": "erin", "password": PASSWORD, "otp_token": ""},
        HTTP_X_FORWARDED_FOR="9.9.9.9, 203.0.113.7",
    )
    other = Client(REMOTE_ADDR="10.0.0.1").post(
        LOGIN,
        {"username": "erin", "password": PASSWORD, "otp_token": ""},
        HTTP_X_FORWARDED_FOR="198.51.100.4",
    )

    assert same.status_code == 429
    assert other.status_code == 302


# --- sign-out -------------------------------------------------------------------------


def test_sign_out_is_a_post_that_ends_the_session_and_its_second_factor(client, officer):
    sign_in(client, "olivia", otp_token=app_code(officer.user))

    asked = client.get("/accounts/logout/")
    assert signed_in_as(client) == str(officer.user.pk)
    response = client.post("/accounts/logout/")

    assert asked.status_code == 200
    assert response.status_code == 302
    assert response["Location"] == LOGIN
    assert signed_in_as(client) is None
    assert not verified(client)


def test_sign_out_needs_its_csrf_token(officer):
    client = Client(enforce_csrf_checks=True)
    client.force_login(officer.user)

    response = client.post("/accounts/logout/")

    assert response.status_code == 403
    assert signed_in_as(client) == str(officer.user.pk)
