"""The officers' ledger page in words: a sentence-like label per kind with the code kept
beside it, details per key with names instead of ids, hashes shortened, and the whole
page in English and German."""

import hashlib
import re

import pytest
from django.db import transaction

from compliance.accounts.models import Profile
from compliance.ledger.services import ledger_append
from compliance.web.wording import (
    LEDGER_KEY_WORDS,
    LEDGER_KIND_LABELS,
    LedgerDetail,
    ledger_details,
    ledger_kind_choices,
    ledger_kind_label,
)

pytestmark = pytest.mark.django_db


def _record(kind: str, *, subject: str = "", actor: str = "t", payload=None, parts=None) -> None:
    with transaction.atomic():
        ledger_append(kind=kind, subject=subject, actor=actor, payload=payload, parts=parts)


def _cells(page: str, css_class: str) -> list[str]:
    return re.findall(rf'<td class="{css_class}"[^>]*>(.*?)</td>', page, re.S)


def test_the_ledger_page_names_each_kind_in_words_and_keeps_the_code_beside_it(
    officer_client, household
):
    page = officer_client.get("/officer/ledger/").content.decode()

    kinds = _cells(page, "kind")
    assert 'Account created <code class="kind-code">account.created</code>' in kinds
    assert 'Profile created <code class="kind-code">profile.created</code>' in kinds
    # no bare code as the only words of an entry the page knows
    assert all("kind-code" in cell for cell in kinds)


def test_the_ledger_page_shows_an_unknown_kind_as_its_code(officer_client):
    _record("something.new", payload={"n": 1})

    page = officer_client.get("/officer/ledger/").content.decode()

    assert _cells(page, "kind") == ["<code>something.new</code>"]
    assert '<option value="something.new">something.new</option>' in page


def test_the_ledger_page_in_german_says_what_happened_in_german(officer_client, household):
    page = officer_client.get("/officer/ledger/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert '<html lang="de"' in page
    assert 'Profil angelegt <code class="kind-code">profile.created</code>' in page
    assert '<option value="account.created">Konto angelegt</option>' in page
    assert "Die Kette ist intakt." in page
    assert "The chain is intact." not in page
    assert "soeben geprüft" in page
    assert "Einträge, die neuesten zuerst" in page


def test_the_ledger_filter_lists_kinds_by_their_words(officer_client, household):
    page = officer_client.get("/officer/ledger/").content.decode()

    assert '<option value="account.created">Account created</option>' in page
    assert '<option value="profile.created">Profile created</option>' in page
    assert ">account.created</option>" not in page


def test_the_kind_choices_are_ordered_by_their_words():
    choices = ledger_kind_choices(["purge.batch", "account.created", "zzz.unknown"])

    assert choices == [
        ("account.created", "Account created"),
        ("purge.batch", "Recordings purged"),
        ("zzz.unknown", "zzz.unknown"),
    ]


def test_every_kind_the_application_writes_has_words():
    # the kinds written through ledger_append(kind="...") across the services
    from pathlib import Path

    from django.conf import settings

    written = set()
    for path in (Path(settings.BASE_DIR) / "compliance").rglob("*.py"):
        written |= set(re.findall(r'kind="([a-z_]+\.[a-z_]+)"', path.read_text()))
    written |= {"consent.granted", "consent.withdrawn"}  # chosen by a conditional

    assert written - set(LEDGER_KIND_LABELS) == set()
    assert ledger_kind_label("no.such_kind") is None


def test_the_sequence_and_time_columns_never_wrap(officer_client, household):
    from pathlib import Path

    from django.conf import settings

    page = officer_client.get("/officer/ledger/").content.decode()
    css = (Path(settings.BASE_DIR) / "compliance/web/static/web/earshot.css").read_text()

    assert _cells(page, "num seq") and _cells(page, "when")
    rule = next(line for line in css.splitlines() if line.startswith("td.seq, td.when"))
    assert "white-space: nowrap" in rule


def test_the_subject_is_the_profiles_name_beside_its_id_and_the_actor_a_username(
    officer_client, officer
):
    user, _device = officer
    from tests.web.conftest import make_household

    household = make_household("bob")
    Profile.objects.filter(pk=household.adult.pk).update(display_name="Bob's phone")
    _record(
        "consent.withdrawn",
        subject="profile:prof-bob",
        actor=f"user:{user.pk}",
        payload={"purpose": "human_review", "channel": "web"},
    )

    page = officer_client.get("/officer/ledger/").content.decode()

    newest = page.split('<td class="subject"', 1)[1].split("</tr>", 1)[0]
    assert 'title="profile:prof-bob">Bob&#x27;s phone (prof-bob)</td>' in newest
    assert f"<td>{user.get_username()}</td>" in newest
    assert f"user:{user.pk}" not in newest
    assert "purpose:</span> human review" in newest


def test_a_name_chosen_to_look_like_another_profiles_id_does_not_hide_the_subject(
    officer_client,
):
    """A user names their profile after someone else's id: the entry still shows, in
    plain sight, the profile it is about."""
    from tests.web.conftest import make_household

    alice = make_household("alice")
    Profile.objects.filter(pk=alice.adult.pk).update(display_name="prof-bob")
    _record("consent.withdrawn", subject=f"profile:{alice.adult.external_id}", actor="t")

    page = officer_client.get("/officer/ledger/").content.decode()

    newest = page.split('<td class="subject"', 1)[1].split("</td>", 1)[0]
    assert f"prof-bob ({alice.adult.external_id})" in newest


def test_details_name_countries_durations_and_lists():
    details = ledger_details(
        {
            "jurisdiction": "DE",
            "retention_days": 540,
            "policies": ["policy:7", "policy:8"],
            "holds": [[1, "CASE-1"], [2, "CASE-2"]],
            "granted": True,
        }
    )

    assert details == [
        LedgerDetail(label="on", text="yes"),
        LedgerDetail(label="holds", text="(1, CASE-1), (2, CASE-2)"),
        LedgerDetail(label="country", text="Germany"),
        LedgerDetail(label="policies", text="policy:7, policy:8"),
        LedgerDetail(label="kept", text="18 months"),
    ]


def test_every_key_the_storage_sweep_writes_has_words(settings):
    """A refused sweep's entry and an allowed mass change's are read by an officer who
    must act on them: each of their keys is said in words, none shown as its code."""
    from compliance.ledger.models import LedgerEntry
    from compliance.retention.storage_sweep import storage_sweep
    from tests.factories import ArtefactFactory

    settings.STORAGE_SWEEP_MAX_CHANGE_FLOOR = 1
    for n in range(3):
        ArtefactFactory(storage_key=f"audio/gone-{n}.wav")
    storage_sweep()
    storage_sweep(allow_mass_change=True)

    keys = {k for e in LedgerEntry.objects.filter(kind__startswith="storage.") for k in e.payload}
    assert keys >= {"rows_refused", "rows_limit", "mass_change_allowed"}
    assert sorted(k for k in keys if k not in LEDGER_KEY_WORDS) == []


def test_a_reason_the_application_wrote_is_in_words_and_one_an_officer_typed_stays():
    from django.utils import translation

    (written,) = ledger_details({"reason": "consent_withdrawn"})
    (typed,) = ledger_details({"reason": "Checked with the DPO"})
    with translation.override("de"):
        (german,) = ledger_details({"reason": "consent_withdrawn"})

    assert written.text == "the person withdrew consent"
    assert typed.text == "Checked with the DPO"
    assert german.text == "die Person hat ihre Einwilligung widerrufen"


def test_the_page_names_policies_holds_rules_and_webhooks_instead_of_their_ids(
    officer_client, household, settings
):
    from compliance.retention.services import legal_hold_place, retention_policy_create
    from compliance.transfers.services import transfer_rule_create
    from compliance.webhooks.services import subscription_create

    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with transaction.atomic():
        policy = retention_policy_create(
            jurisdiction="DE", category="audio", retention_days=540, actor="t"
        )
        hold = legal_hold_place(
            profile=household.adult, reason="Dispute", case_reference="CASE-77", actor="t"
        )
        transfer_rule_create(jurisdiction="DE", reviewer_location="IN", actor="t")
        subscription_create(
            url="https://127.0.0.1/earshot",
            events=["*"],
            description="",
            holds_copies=False,
            actor="t",
        )
    _record(
        "purge.batch",
        subject="purge",
        payload={"policies": [f"policy:{policy.pk}", "choice:dont_save", "policy:999999"]},
    )

    page = officer_client.get("/officer/ledger/").content.decode()
    subjects = _cells(page, "subject")
    (purge,) = [cell for cell in _cells(page, "small payload") if "policy:999999" in cell]

    assert "retention policy: Germany, audio: kept 18 months (version 1)" in subjects
    assert "legal hold CASE-77" in subjects
    assert "transfer rule: recordings from Germany may be reviewed in India" in subjects
    assert "webhook to https://127.0.0.1/earshot" in subjects
    assert f"legal_hold:{hold.pk}" not in " ".join(subjects)
    # a purge's bases in words; an id whose row is gone stays as recorded
    assert "retention policy: Germany, audio: kept 18 months (version 1)" in purge
    assert "the person&#x27;s choice: Don&#x27;t save my recordings" in purge
    assert f"policy:{policy.pk}," not in purge


def test_details_shorten_a_hash_and_keep_it_whole_in_a_title():
    digest = hashlib.sha256(b"entry").hexdigest()

    (detail,) = ledger_details({"digest": digest})

    assert detail == LedgerDetail(label="digest", text=f"{digest[:12]}…", full=digest)


def test_an_entrys_parts_are_explained_as_what_they_commit_to(officer_client):
    parts = {f"p-{i}": {"artefacts": i} for i in range(3)}
    _record("purge.batch", subject="purge", payload={"artefacts": 3}, parts=parts)

    page = officer_client.get("/officer/ledger/").content.decode()
    german = officer_client.get("/officer/ledger/", HTTP_ACCEPT_LANGUAGE="de")

    cell = _cells(page, "small payload")[0]
    assert "commits to 3 profiles&#x27; parts" in cell
    assert "parts_root" not in cell
    root = re.search(r'<span class="hash" title="([^"]+)">', cell)
    assert root is not None and len(root.group(1)) > 12
    assert "verbürgt die Teile von 3 Profilen" in german.content.decode()


def test_the_verify_and_acknowledge_messages_are_german_on_a_german_page(officer_client):
    response = officer_client.post(
        "/officer/ledger/verify/", HTTP_ACCEPT_LANGUAGE="de", follow=True
    )

    page = response.content.decode()
    assert "Eine vollständige Prüfung" in page
    assert "A full verification of the chain has started" not in page
