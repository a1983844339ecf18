"""The officers' forms: length limits shown and kept, confirmation before an action
that removes something, long values that wrap, and the search for a hold's target."""

import re
from pathlib import Path

import pytest
from django.conf import settings
from django.template.loader import render_to_string
from django.test import Client

from compliance.consent.services import consent_default_create
from compliance.retention.models import LegalHold
from compliance.retention.services import legal_hold_place, retention_policy_create
from compliance.transfers.services import transfer_rule_create
from compliance.web.views.officer import LedgerAcknowledgeForm
from tests.web.conftest import make_household

pytestmark = pytest.mark.django_db


def hold_form(**overrides: str) -> dict[str, str]:
    return {
        "scope": "account",
        "target": "acct-alice",
        "case_reference": "C-42",
        "reason": "litigation",
        **overrides,
    }


def test_a_hold_reason_longer_than_its_limit_is_refused_on_the_form(officer_client, household):
    response = officer_client.post("/officer/holds/", hold_form(reason="x" * 200_000))

    assert response.status_code == 400
    assert "at most 2000 characters" in response.content.decode()
    assert not LegalHold.objects.exists()


def test_a_reason_at_its_limit_is_accepted(officer_client, household):
    response = officer_client.post("/officer/holds/", hold_form(reason="x" * 2000))

    assert response.status_code == 302
    assert len(LegalHold.objects.get().reason) == 2000


def test_a_case_reference_longer_than_its_column_is_refused_on_the_form(officer_client, household):
    response = officer_client.post("/officer/holds/", hold_form(case_reference="C" * 201))

    assert response.status_code == 400
    assert not LegalHold.objects.exists()


def test_the_hold_form_shows_its_limits_and_the_browser_keeps_them(officer_client):
    body = officer_client.get("/officer/holds/").content.decode()

    assert re.search(r'<textarea[^>]*name="reason"[^>]*maxlength="2000"', body)
    assert re.search(r'<input[^>]*name="case_reference"[^>]*maxlength="200"', body)
    assert "Up to 2,000 characters." in body
    assert "Up to 200 characters." in body
    assert "Up to 128 characters." in body


def test_the_acknowledgement_reason_shows_its_limit_too():
    form = LedgerAcknowledgeForm(initial={"run": 1})

    html = render_to_string("web/_field.html", {"field": form["reason"]})

    assert "Up to 2,000 characters." in html


def test_long_values_wrap_in_every_table():
    css = (Path(settings.BASE_DIR) / "compliance/web/static/web/earshot.css").read_text()

    assert re.search(r"(^|\n)td \{ overflow-wrap: anywhere; \}", css)


def confirmation_of(body: str, action: str) -> re.Match[str] | None:
    """The POST form for `action`, inside a closed disclosure with a question in it."""
    return re.search(
        r'<details class="confirm"><summary[^>]*>[^<]+…</summary>\s*'
        rf'<form method="post" action="{re.escape(action)}">.*?<p>[^<]+\?[^<]*</p>'
        r'<button type="submit"[^>]*>Yes, [^<]+</button></form></details>',
        body,
        re.S,
    )


def test_retire_remove_and_release_ask_for_confirmation_first(officer_client, household):
    policy = retention_policy_create(
        jurisdiction="DE", category="audio", retention_days=30, actor="test"
    )
    default = consent_default_create(
        jurisdiction="US", purpose="model_training", granted=True, actor="test"
    )
    rule = transfer_rule_create(jurisdiction="DE", reviewer_location="IE", actor="test")
    hold = legal_hold_place(
        profile=household.adult, reason="litigation", case_reference="C-1", actor="test"
    )

    pages = {
        "/officer/policies/": f"/officer/policies/{policy.pk}/retire/",
        "/officer/consent-defaults/": f"/officer/consent-defaults/{default.pk}/delete/",
        "/officer/transfer-rules/": f"/officer/transfer-rules/{rule.pk}/delete/",
        "/officer/holds/": f"/officer/holds/{hold.pk}/release/",
    }
    for page, action in pages.items():
        body = officer_client.get(page).content.decode()
        assert confirmation_of(body, action), page
        assert body.count(f'action="{action}"') == 1, page


def test_the_hold_search_finds_accounts_and_profiles_by_email_and_by_id(officer_client):
    alice = make_household("alice")
    alice.user.email = "alice@example.org"
    alice.user.save()
    make_household("bob")

    by_email = officer_client.get("/officer/holds/search/", {"q": "ALICE@example"})
    by_id = officer_client.get("/officer/holds/search/", {"q": "prof-bob-k"})

    body = by_email.content.decode()
    assert by_email.status_code == 200
    assert "/officer/holds/?scope=account&amp;target=acct-alice" in body
    assert "/officer/holds/?scope=profile&amp;target=prof-alice-kid" in body
    assert "acct-bob" not in body
    body = by_id.content.decode()
    assert "/officer/holds/?scope=profile&amp;target=prof-bob-kid" in body
    assert 'target=prof-bob"' not in body
    assert "acct-alice" not in body


def test_a_search_that_finds_nothing_says_so(officer_client, household):
    body = officer_client.get("/officer/holds/search/", {"q": "nobody-here"}).content.decode()

    assert "Nothing matches." in body


def test_a_search_link_fills_the_hold_form(officer_client, household):
    body = officer_client.get(
        "/officer/holds/", {"scope": "profile", "target": "prof-alice-kid"}
    ).content.decode()

    assert re.search(r'<input[^>]*name="target"[^>]*value="prof-alice-kid"', body)
    assert re.search(r'<input[^>]*name="scope"[^>]*value="profile"[^>]*checked', body)


def test_the_hold_page_offers_the_search(officer_client):
    body = officer_client.get("/officer/holds/").content.decode()

    assert 'action="/officer/holds/search/"' in body
    assert 'method="get"' in body


def test_the_search_is_for_verified_officers_only(household):
    client = Client()
    client.force_login(household.user)

    assert client.get("/officer/holds/search/", {"q": "alice"}).status_code == 403
