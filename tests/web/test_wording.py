"""Words for people on the pages: countries, durations, usernames and the officers'
success messages, never codes or `user:N`."""

import pytest
from django.test import Client

from compliance.consent.models import ConsentDefault
from compliance.retention.services import legal_hold_place, retention_policy_create
from compliance.transfers.models import TransferRule
from compliance.web.wording import actor_names, country, duration
from tests.web.conftest import make_household


@pytest.mark.parametrize(
    ("days", "words"),
    [
        (1, "1 day"),
        (30, "1 month"),
        (90, "3 months"),
        (540, "18 months"),
        (365, "1 year"),
        (730, "2 years"),
        (14, "2 weeks"),
        (45, "45 days"),
        (0, "not at all"),
    ],
)
def test_a_retention_period_is_said_in_the_unit_people_use(days, words):
    assert duration(days) == words


def test_countries_and_groups_are_named_and_unknown_codes_stay():
    assert (country("DE"), country("US"), country("EU"), country("*")) == (
        "Germany",
        "the United States",
        "the EU",
        "everywhere",
    )
    assert country("QQ") == "QQ"


@pytest.mark.django_db
def test_actor_ids_become_usernames_in_one_query(django_assert_num_queries):
    alice = make_household("alice").user
    bob = make_household("bob").user

    with django_assert_num_queries(1):
        names = actor_names([f"user:{alice.pk}", f"user:{bob.pk}", "schedule", "svc:ingest"])

    assert names == {
        f"user:{alice.pk}": "alice",
        f"user:{bob.pk}": "bob",
        "schedule": "the schedule",
        "svc:ingest": "svc:ingest",
    }
    assert actor_names(["user:999999"]) == {"user:999999": "a user who no longer exists"}


def success_message(response) -> str:
    body = response.content.decode()
    return body.split('class="message message-success">', 1)[1].split("</p>", 1)[0]


@pytest.mark.django_db
def test_a_new_policy_is_announced_in_words(officer_client):
    response = officer_client.post(
        "/officer/policies/",
        {"jurisdiction": "de", "category": "audio", "applies_to": "all", "retention_days": "540"},
        follow=True,
    )

    assert success_message(response) == (
        "Policy created: Germany, audio: kept 18 months (version 1). The recordings it "
        "covers are being rescheduled."
    )


@pytest.mark.django_db
def test_retiring_a_policy_is_announced_in_words(officer_client):
    policy = retention_policy_create(
        jurisdiction="FR", category="audio", applies_to="children", retention_days=90, actor="t"
    )

    response = officer_client.post(f"/officer/policies/{policy.pk}/retire/", follow=True)

    assert success_message(response) == (
        "Retired: France, audio of children: kept 3 months (version 1), and the versions before it."
    )


@pytest.mark.django_db
def test_consent_defaults_are_announced_in_words(officer_client):
    set_ = officer_client.post(
        "/officer/consent-defaults/",
        {"jurisdiction": "FR", "purpose": "model_training", "granted": "false"},
        follow=True,
    )
    default = ConsentDefault.objects.get()
    removed = officer_client.post(f"/officer/consent-defaults/{default.pk}/delete/", follow=True)

    assert success_message(set_) == "France: model training is now off by default."
    assert success_message(removed) == (
        "Default removed. France: model training is now off until each user turns it on."
    )


@pytest.mark.django_db
def test_transfer_rules_are_announced_in_words(officer_client):
    added = officer_client.post(
        "/officer/transfer-rules/", {"jurisdiction": "DE", "reviewer_location": "IE"}, follow=True
    )
    rule = TransferRule.objects.get()
    removed = officer_client.post(f"/officer/transfer-rules/{rule.pk}/delete/", follow=True)

    assert success_message(added) == (
        "Transfer rule added: recordings from Germany may be reviewed in Ireland."
    )
    assert success_message(removed) == (
        "Transfer rule removed: recordings from Germany may no longer be reviewed in Ireland."
    )


@pytest.mark.django_db
def test_the_officer_lists_and_the_ledger_name_users_not_user_ids(officer_client, officer):
    household = make_household("alice")
    legal_hold_place(
        profile=household.adult,
        reason="litigation",
        case_reference="C-1",
        actor=f"user:{officer[0].pk}",
    )
    officer_client.post(
        "/officer/transfer-rules/", {"jurisdiction": "DE", "reviewer_location": "IE"}
    )
    officer_client.post(
        "/officer/consent-defaults/",
        {"jurisdiction": "FR", "purpose": "model_training", "granted": "false"},
    )

    for path in ("/officer/holds/", "/officer/transfer-rules/", "/officer/consent-defaults/"):
        body = officer_client.get(path).content.decode()
        assert f'<span class="muted small">{officer[0].username}</span>' in body, path
        assert f"user:{officer[0].pk}" not in body, path
    ledger = officer_client.get("/officer/ledger/").content.decode()
    assert f"<td>{officer[0].username}</td>" in ledger


@pytest.mark.django_db
def test_the_privacy_page_says_how_long_recordings_are_kept_and_by_which_country():
    household = make_household("dora", jurisdiction="DE")
    retention_policy_create(jurisdiction="DE", category="audio", retention_days=540, actor="t")
    client = Client()
    client.force_login(household.user)

    body = " ".join(client.get("/privacy/").content.decode().split())

    assert "You have not chosen yet: recordings are kept 18 months, the policy for Germany." in (
        body
    )
    assert "Whatever you choose, the policy for Germany keeps audio at most 18 months." in body
    assert "as our policy for your country says" not in body


@pytest.mark.django_db
def test_without_a_policy_the_privacy_page_says_recordings_are_kept_until_deleted():
    household = make_household("uma", jurisdiction="US")
    client = Client()
    client.force_login(household.user)

    body = " ".join(client.get("/privacy/").content.decode().split())

    assert (
        "recordings are kept until you delete them, since there is no retention policy for "
        "the United States."
    ) in body


@pytest.mark.django_db
def test_a_hold_with_its_days_the_wrong_way_round_is_refused_in_sentences(
    officer_client, household
):
    response = officer_client.post(
        "/officer/holds/",
        {
            "scope": "account",
            "target": "acct-alice",
            "date_from": "2026-03-10",
            "date_to": "2026-03-01",
            "case_reference": "C-1",
            "reason": "litigation",
        },
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "the first day lies after the last day" in body
    assert "The first day must be on or before the last day." in body
    assert "The last day must be on or after the first day." in body
    for code in ("`", "after to", "before from", "lies after `to`"):
        assert code not in body


@pytest.mark.django_db
def test_an_unknown_country_is_refused_in_sentences_not_codes(officer_client):
    response = officer_client.post(
        "/officer/consent-defaults/",
        {"jurisdiction": "QQ", "purpose": "model_training", "granted": "false"},
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "Use a two-letter country code, such as DE or US." in body
    assert ">unknown<" not in body
    assert "ISO 3166" not in body


def test_a_fields_problem_shows_its_sentence_or_the_pages_words_never_its_code():
    from compliance.core.errors import FieldError
    from compliance.web.wording import field_sentence

    assert field_sentence("reason", FieldError("max_length", "Too long.")) == "Too long."
    assert (
        field_sentence("jurisdiction", FieldError("unknown", "Must be a country code."))
        == "Use a two-letter country code, such as DE or US."
    )
    assert field_sentence("x", FieldError("weird_code", "written for `clients`")) == (
        "Please check this value."
    )


@pytest.mark.django_db
def test_placing_a_hold_says_what_it_holds_and_what_that_means(officer_client, household):
    response = officer_client.post(
        "/officer/holds/",
        {"scope": "profile", "target": "prof-alice", "case_reference": "C-9", "reason": "court"},
        follow=True,
    )

    assert success_message(response) == (
        "Legal hold placed for case C-9 on profile prof-alice: its recordings are kept from "
        "every deletion until the hold is released."
    )


@pytest.mark.django_db
def test_a_refusal_worded_for_api_clients_reaches_the_privacy_page_as_a_sentence(
    household, monkeypatch
):
    from compliance.core.errors import ApplicationError, field_error
    from compliance.web.views import privacy

    def refuse(**kwargs):
        raise ApplicationError(
            "validation_error",
            "channel must be one of app, web.",
            fields=field_error("channel", "invalid", "Must be one of app, web."),
        )

    monkeypatch.setattr(privacy, "consent_set", refuse)
    client = Client()
    client.force_login(household.user)

    response = client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/model_training/",
        {"granted": "true"},
    )

    body = response.content.decode()
    assert response.status_code == 400
    assert "That was not saved. Please reload the page and try again." in body
    assert "channel must be one of" not in body


@pytest.mark.django_db
def test_a_refusal_already_in_a_sentence_is_shown_as_it_is(household):
    client = Client()
    client.force_login(household.user)

    response = client.post(
        f"/privacy/profiles/{household.child.external_id}/consents/human_review/",
        {"granted": "true"},
    )

    assert response.status_code == 400
    assert "A child&#x27;s profile can never be granted human review." in response.content.decode()
