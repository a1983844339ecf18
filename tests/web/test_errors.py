"""Error pages: in the site's frame, with a sentence for people and a way back."""

import pytest
from django.template.loader import render_to_string
from django.test import Client, RequestFactory

from compliance.core import views as core_views
from tests.web.conftest import make_officer, person

WAY_BACK = b'href="/"'


def assert_in_frame(content: bytes) -> None:
    assert b'class="site-header"' in content
    assert b"web/earshot.css" in content
    assert WAY_BACK in content
    assert b"<h1" in content


def test_the_500_page_renders_without_a_database_or_a_request():
    # No django_db mark: a query here would fail the test.
    content = render_to_string("500.html").encode()

    assert_in_frame(content)
    assert b"Something went wrong on our side" in content


def test_the_500_handler_answers_a_page_in_the_frame_without_a_database():
    response = core_views.server_error(RequestFactory().get("/privacy/"))

    assert response.status_code == 500
    assert_in_frame(response.content)


def test_the_400_handler_answers_a_page_in_the_frame_without_a_database():
    response = core_views.bad_request(RequestFactory().get("/privacy/"), Exception("bad"))

    assert response.status_code == 400
    assert_in_frame(response.content)
    assert b"nothing was changed" in response.content


@pytest.mark.django_db
def test_an_unknown_page_is_a_404_in_the_frame_with_ways_back(client: Client):
    response = client.get("/no/such/page/")

    assert response.status_code == 404
    assert_in_frame(response.content)
    assert b"We could not find that page" in response.content
    assert b'href="/privacy/"' in response.content


@pytest.mark.django_db
def test_an_unknown_api_path_is_still_json(client: Client):
    response = client.get("/api/v1/no-such-thing")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_a_form_that_fails_the_csrf_check_gets_a_page_that_says_nothing_changed(household):
    client = Client(enforce_csrf_checks=True)
    client.force_login(household.user)

    response = client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/human_review/",
        {"granted": "true"},
    )

    assert response.status_code == 403
    assert_in_frame(response.content)
    assert b"Nothing was changed" in response.content
    assert b"CSRF" not in response.content


@pytest.mark.django_db
def test_a_signed_in_end_user_sent_to_the_officer_pages_is_told_why_she_cannot_enter(household):
    client = Client()
    client.force_login(household.user)

    response = client.get("/officer/")

    assert response.status_code == 403
    assert_in_frame(response.content)
    body = response.content.decode()
    assert "officer account" in body
    assert "second factor" in body
    assert "Signed in as" in body
    assert 'name="password"' not in body


@pytest.mark.django_db
def test_an_officer_without_the_second_factor_is_still_sent_to_sign_in():
    officer, _ = make_officer()
    client = Client()
    client.force_login(officer)

    response = client.get("/officer/")

    assert response.status_code == 302


@pytest.mark.django_db
def test_a_signed_in_user_without_an_account_is_told_why_too():
    client = Client()
    client.force_login(person("bob"))

    response = client.get("/officer/holds/")

    assert response.status_code == 403
    assert b"officer account" in response.content
