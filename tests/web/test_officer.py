"""The officers' pages through Django's test client."""

import csv
import html
import io
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from compliance.consent.models import ConsentDefault
from compliance.ledger.models import LedgerEntry, VerificationRun
from compliance.ledger.services import ledger_verification_step
from compliance.recordings.models import Artefact
from compliance.retention.models import LegalHold, RetentionPolicy
from compliance.retention.services import legal_hold_place, retention_policy_create
from compliance.transfers.models import TransferRule
from compliance.web.dashboard import REPORTS
from tests.conftest import postgres_only
from tests.ledger.conftest import append, delete_newest, edit_payload, verify_in_full
from tests.web.conftest import make_household, make_officer, person, verify_session

pytestmark = pytest.mark.django_db

PAGES = [
    "/officer/",
    "/officer/policies/",
    "/officer/consent-defaults/",
    "/officer/transfer-rules/",
    "/officer/holds/",
    "/officer/ledger/",
    "/officer/webhooks/",
    "/officer/reports/purges-per-day.csv",
]


@pytest.mark.parametrize("path", PAGES)
def test_officer_pages_send_anyone_unverified_to_sign_in(client: Client, path):
    officer, _ = make_officer()
    client.force_login(officer)  # password only: no second factor in this session

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"].startswith(settings.LOGIN_URL)


@pytest.mark.parametrize("path", PAGES)
def test_officer_pages_refuse_a_verified_user_who_is_no_officer(client: Client, path):
    from django_otp.plugins.otp_totp.models import TOTPDevice

    user = person("mallory")
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    client.force_login(user)
    verify_session(client, device)

    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", PAGES[:-1])
def test_every_officer_page_renders(officer_client, household, path):
    response = officer_client.get(path)

    assert response.status_code == 200
    assert b"<h1>" in response.content


def test_the_dashboard_shows_its_figures_as_charts_with_text_alternatives(
    officer_client, household
):
    now = timezone.now()
    Artefact.objects.filter(recording=household.recordings[0]).update(
        expires_at=now - timedelta(hours=3)
    )

    response = officer_client.get("/officer/")

    page = response.content.decode()
    assert response.status_code == 200
    for chart in (
        "overdue",
        "purge-lag",
        "purges-per-day",
        "reviews-by-location",
        "consent-human-review",
        "consent-model-training",
    ):
        assert f'id="chart-{chart}"' in page
    assert page.count('<svg viewBox="0 0 640') == 6  # one per chart (legends draw small ones)
    assert page.count('role="img"') == 6
    assert page.count("Show the data as a table") == 6
    assert "Oldest waiting 3.0 h" in page
    assert "Overdue artefacts" in page


def test_a_policy_preview_shows_what_it_would_purge_and_changes_nothing(officer_client, household):
    form = {"jurisdiction": "us", "category": "audio", "applies_to": "all", "retention_days": "4"}

    response = officer_client.post("/officer/policies/", {**form, "action": "preview"})

    page = response.content.decode()
    assert response.status_code == 200
    assert "Preview: what this policy would purge" in page
    # adult: 5 and 9 days old; the child's 3-day-old clip is not yet 4 days old
    assert 'data-preview="purged_when_effective">2<' in page
    assert not RetentionPolicy.objects.exists()


def test_creating_a_policy_writes_it_and_its_ledger_entry(officer_client, officer):
    response = officer_client.post(
        "/officer/policies/",
        {
            "jurisdiction": "EU",
            "category": "transcript",
            "applies_to": "children",
            "retention_days": "30",
            "action": "create",
        },
        follow=True,
    )

    policy = RetentionPolicy.objects.get()
    assert (policy.jurisdiction, policy.category, policy.retention_days) == (
        "EU",
        "transcript",
        30,
    )
    assert policy.created_by == f"user:{officer[0].pk}"
    assert LedgerEntry.objects.filter(kind="retention_policy.created").count() == 1
    assert "Policy created" in response.content.decode()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("jurisdiction", "Atlantis", "A country code, a group (EU, EEA) or *"),
        ("retention_days", "-1", "greater than or equal to 0"),
        ("category", "video", "Select a valid choice"),
    ],
)
@pytest.mark.parametrize("action", ["preview", "create"])
def test_an_invalid_policy_is_a_400_with_the_reason_on_the_form(
    officer_client, field, value, message, action
):
    form = {"jurisdiction": "DE", "category": "audio", "applies_to": "all", "retention_days": "30"}

    response = officer_client.post("/officer/policies/", {**form, field: value, "action": action})

    assert response.status_code == 400
    assert message.lower() in response.content.decode().lower()
    assert not RetentionPolicy.objects.exists()


def test_a_service_refusal_shows_its_message_on_the_form(officer_client):
    form = {"jurisdiction": "XX", "category": "audio", "applies_to": "all", "retention_days": "3"}

    response = officer_client.post("/officer/policies/", {**form, "action": "create"})

    assert response.status_code == 400
    assert "The policy is not valid." in response.content.decode()


def test_retiring_a_policy_from_the_list(officer_client):
    policy = retention_policy_create(
        jurisdiction="DE", category="audio", retention_days=30, actor="test"
    )

    officer_client.post(f"/officer/policies/{policy.pk}/retire/")

    policy.refresh_from_db()
    assert policy.retired_at is not None
    assert officer_client.post("/officer/policies/999/retire/").status_code == 404


def test_consent_defaults_are_set_refused_twice_and_removed(officer_client):
    form = {"jurisdiction": "us", "purpose": "model_training", "granted": "true"}

    officer_client.post("/officer/consent-defaults/", form)
    duplicate = officer_client.post("/officer/consent-defaults/", form)
    default = ConsentDefault.objects.get()
    officer_client.post(f"/officer/consent-defaults/{default.pk}/delete/")

    assert (default.jurisdiction, default.granted) == ("US", True)
    assert duplicate.status_code == 400
    assert "exists" in duplicate.content.decode()
    assert not ConsentDefault.objects.exists()


def test_transfer_rules_are_added_validated_and_removed(officer_client):
    officer_client.post(
        "/officer/transfer-rules/", {"jurisdiction": "de", "reviewer_location": "ie"}
    )
    bad = officer_client.post(
        "/officer/transfer-rules/", {"jurisdiction": "DE", "reviewer_location": "QQ"}
    )
    rule = TransferRule.objects.get()
    officer_client.post(f"/officer/transfer-rules/{rule.pk}/delete/")

    assert (rule.jurisdiction, rule.reviewer_location) == ("DE", "IE")
    assert bad.status_code == 400
    assert "the country code is not one we know" in bad.content.decode()
    assert "Use a two-letter country code, such as IE or US." in bad.content.decode()
    assert not TransferRule.objects.exists()


def test_legal_holds_are_placed_on_an_account_and_released(officer_client, household):
    response = officer_client.post(
        "/officer/holds/",
        {
            "scope": "account",
            "target": "acct-alice",
            "date_from": "2026-01-01",
            "case_reference": "C-42",
            "reason": "litigation",
        },
    )
    hold = LegalHold.objects.get()
    officer_client.post(f"/officer/holds/{hold.pk}/release/")

    assert response.status_code == 302
    assert hold.account.external_id == "acct-alice"
    assert hold.recorded_from.isoformat() == "2026-01-01T00:00:00+00:00"
    hold.refresh_from_db()
    assert hold.released_at is not None


def test_a_hold_on_an_unknown_profile_is_a_400(officer_client):
    response = officer_client.post(
        "/officer/holds/",
        {"scope": "profile", "target": "nobody", "case_reference": "C-1", "reason": "x"},
    )

    assert response.status_code == 400
    assert "Profile not found." in response.content.decode()
    assert not LegalHold.objects.exists()


def test_the_ledger_page_shows_verification_and_pages_entries(officer_client, household):
    response = officer_client.get("/officer/ledger/")

    page = response.content.decode()
    assert "The chain is intact." in page
    assert "checked just now" in page  # no full verification yet: the page walked it all
    assert 'Profile created <code class="kind-code">profile.created</code>' in page
    filtered = officer_client.get("/officer/ledger/?kind=account.created").content.decode()
    assert '<code class="kind-code">account.created</code>' in filtered
    assert '<code class="kind-code">profile.created</code>' not in filtered


def test_the_ledger_page_reports_a_broken_chain(officer_client, household):
    from django.db import connection

    if connection.vendor == "postgresql":
        pytest.skip("the ledger's trigger refuses edits on PostgreSQL (tested in tests/ledger)")
    LedgerEntry.objects.filter(seq=2).update(actor="someone else")

    page = officer_client.get("/officer/ledger/").content.decode()

    assert "Verification failed" in page
    assert "ledger entry #2" in page


# --- the ledger page renders any payload --------------------------------------------------


def _details_text(page: str) -> str:
    """The newest entry's details cell as text, its markup taken out."""
    cell = re.search(r'<td class="small payload">(.*?)</td>', page, re.S)
    assert cell is not None
    return html.unescape(re.sub(r"<[^>]+>", "", cell.group(1)))


def _record(payload: dict) -> None:
    from django.db import transaction

    from compliance.ledger.services import ledger_append

    with transaction.atomic():
        ledger_append(kind="review_items.revoked", subject="profile:p", actor="t", payload=payload)


@pytest.mark.parametrize(
    ("payload", "shown"),
    [
        # as a revocation writes it
        (
            {"reason": "consent_withdrawn", "items": 3},
            "items: 3; reason: the person withdrew consent",
        ),
        ({"items": [1, 2, 3]}, "items: 1, 2, 3"),
        ({"items": {"a": 1}}, "items: a: 1"),
        ({"keys": 7}, "keys: 7"),
        ({"values": "v"}, "values: v"),
        ({"get": None}, "get: \u2013"),
        ({"items": 1, "keys": 2, "values": 3, "get": 4}, "get: 4; items: 1; keys: 2; values: 3"),
    ],
    ids=["revocation", "items-list", "items-dict", "keys", "values", "get", "all-four"],
)
def test_the_ledger_page_renders_payload_keys_that_shadow_dict_methods(
    officer_client, payload, shown
):
    _record(payload)

    response = officer_client.get("/officer/ledger/")

    assert response.status_code == 200
    assert shown in _details_text(response.content.decode())


def test_the_ledger_page_escapes_markup_in_a_payload(officer_client):
    _record({"<b>key</b>": "<script>alert(1)</script>", "reason": '"><img src=x onerror=1>'})

    page = officer_client.get("/officer/ledger/").content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "<img src=x" not in page and "<b>key</b>" not in page
    assert "&lt;b&gt;key&lt;/b&gt;:</span> &lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "reason:</span> &quot;&gt;&lt;img src=x onerror=1&gt;" in page


def test_the_ledger_page_shows_a_very_long_value_whole_in_a_cell_that_wraps(officer_client):
    from pathlib import Path

    long_word = "x" * 5000
    _record({"note": long_word})

    page = officer_client.get("/officer/ledger/").content.decode()

    assert f'note:</span> <span class="long">{long_word}</span>' in page
    css = (Path(settings.BASE_DIR) / "compliance/web/static/web/earshot.css").read_text()
    rules = css.splitlines()
    cell = next(line for line in rules if line.startswith("td.payload {"))
    long = next(line for line in rules if line.startswith("td.payload .long"))
    # sentences wrap between words; only a word this long (or a hash) anywhere
    assert "overflow-wrap: break-word" in cell and "anywhere" not in cell
    assert "overflow-wrap: anywhere" in long


# --- the ledger page and the full verifications ----------------------------------------


@pytest.fixture
def hashed(monkeypatch) -> list[int]:
    """The ledger entries re-hashed, by sequence number."""
    from compliance.ledger import selectors as ledger_selectors

    seen: list[int] = []
    real = ledger_selectors.entry_hash

    def counting(**fields):
        seen.append(fields["seq"])
        return real(**fields)

    monkeypatch.setattr(ledger_selectors, "entry_hash", counting)
    return seen


def test_the_ledger_page_rehashes_only_what_was_appended_since_the_last_full_verification(
    officer_client, household, hashed
):
    run = verify_in_full()
    append(3)
    hashed.clear()

    page = officer_client.get("/officer/ledger/").content.decode()

    assert hashed == [run.through_seq, *range(run.through_seq + 1, run.through_seq + 4)]
    assert "The chain is intact." in page
    assert f"checked entries #1 to #{run.through_seq}" in page
    assert "asked for by the schedule" in page
    assert "The 3 entries appended since, checked just now, hold" in page


def test_an_edit_to_an_old_entry_is_found_by_the_next_full_verification_and_then_shown(
    officer_client, household
):
    verify_in_full()
    append(2)
    edit_payload(2, {"forged": True})

    before = officer_client.get("/officer/ledger/").content.decode()
    run = verify_in_full()
    after = officer_client.get("/officer/ledger/").content.decode()

    # Between full verifications the page trusts what the last one verified, and says when.
    assert "The chain is intact." in before
    assert run.status == VerificationRun.Status.BROKEN and run.problem_seq == 2
    assert "The chain is intact." not in after
    assert "Verification failed</strong> at ledger entry #2: content does not match" in after
    assert "the 1 entry before it is intact" in after


def test_an_entry_appended_since_that_does_not_hold_fails_the_page_at_once(
    officer_client, household
):
    run = verify_in_full()
    append(2)
    edit_payload(run.through_seq + 2, {"forged": True})

    page = officer_client.get("/officer/ledger/").content.decode()

    assert f"at ledger entry #{run.through_seq + 2}: content does not match" in page
    assert "found just now" in page


def test_entries_past_the_pages_limit_are_left_to_the_next_full_verification(
    officer_client, household, monkeypatch
):
    from compliance.ledger import selectors as ledger_selectors

    monkeypatch.setattr(ledger_selectors, "PAGE_CHECK_LIMIT", 2)
    newest = append(5)[-1].seq

    no_run_yet = officer_client.get("/officer/ledger/").content.decode()
    run = verify_in_full()
    append(5)
    after_a_run = officer_client.get("/officer/ledger/").content.decode()

    assert "Not verified in full yet." in no_run_yet
    assert f"the {newest - 2} after them wait for the first full verification" in no_run_yet
    assert run.through_seq == newest
    assert "The 2 entries appended since, checked just now" in after_a_run
    assert "3 more wait for the next full verification" in after_a_run


def test_an_officer_starts_a_full_verification_and_sees_it_run(
    officer_client, officer, household, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as queued:
        started = officer_client.post("/officer/ledger/verify/", follow=True)
        again = officer_client.post("/officer/ledger/verify/", follow=True)

    run = VerificationRun.objects.get()
    assert (run.status, run.requested_by) == ("running", f"user:{officer[0].pk}")
    assert len(queued) == 1  # its first step, for a worker
    assert "A full verification of the chain has started" in started.content.decode()
    page = again.content.decode()
    assert "A full verification is already running" in page
    assert f"A full verification is running, asked for by {officer[0].username} at" in page
    assert "Verify the whole chain now" not in page

    ledger_verification_step(run_id=run.pk, budget_seconds=None)
    done = officer_client.get("/officer/ledger/").content.decode()
    assert "Verify the whole chain now" in done
    assert f"asked for by {officer[0].username})" in done
    assert "user:" not in done


def test_starting_a_verification_is_for_verified_officers_and_only_by_post(client: Client):
    officer, device = make_officer()
    client.force_login(officer)

    unverified = client.post("/officer/ledger/verify/")
    verify_session(client, device)
    by_get = client.get("/officer/ledger/verify/")
    not_officer = Client()
    someone = person("mallory")
    not_officer.force_login(someone)

    assert unverified.status_code == 302
    assert by_get.status_code == 405
    assert not_officer.post("/officer/ledger/verify/").status_code in (302, 403)
    assert not VerificationRun.objects.exists()


# --- a shortened ledger, and its acknowledgement ----------------------------------------------


@postgres_only()
@pytest.mark.parametrize("removed", [1, 10, "all"])
def test_entries_removed_from_the_end_stay_broken_on_the_page_until_an_officer_acknowledges(
    officer_client, officer, household, removed
):
    append(12)
    reference = verify_in_full()
    newest = reference.through_seq
    removed = newest if removed == "all" else removed
    delete_newest(removed)
    first = verify_in_full()
    standing = verify_in_full()  # the next scheduled run: still broken, not cleared

    page = officer_client.get("/officer/ledger/").content.decode()
    no_reason = officer_client.post(
        "/officer/ledger/acknowledge/", {"run": standing.pk, "reason": "  "}
    )
    acknowledged = officer_client.post(
        "/officer/ledger/acknowledge/",
        {"run": standing.pk, "reason": "rows lost in the restore of <backup 12>"},
        follow=True,
    )
    after = verify_in_full()
    later = officer_client.get("/officer/ledger/").content.decode()

    assert (first.status, standing.status) == ("broken", "broken")
    assert "The chain is intact." not in page
    assert f"at ledger entry #{newest - removed + 1}: missing: expected at least {newest}" in page
    assert f"up to #{newest} with hash {reference.through_hash}" in page
    assert f'name="run" value="{standing.pk}"' in page
    assert no_reason.status_code == 400
    assert "This field is required." in no_reason.content.decode()
    assert "Verification failed" in no_reason.content.decode()
    assert acknowledged.status_code == 200
    done = acknowledged.content.decode()
    assert "Acknowledged, and recorded as ledger entry" in done
    assert "Verification failed" not in done and "Acknowledge this finding" not in done
    entry = LedgerEntry.objects.order_by("-seq").first()
    assert (entry.kind, entry.actor) == ("ledger.acknowledged", f"user:{officer[0].pk}")
    assert entry.payload["reason"] == "rows lost in the restore of <backup 12>"
    assert f"Last acknowledged by {officer[0].username} at" in done
    assert "rows lost in the restore of &lt;backup 12&gt;" in done
    assert (
        'Verification finding acknowledged <code class="kind-code">ledger.acknowledged</code>'
        in done
    )
    assert after.status == "intact"
    assert "The chain is intact." in later


def test_acknowledging_a_finding_that_is_not_the_newest_is_refused_on_the_page(
    officer_client, household
):
    verify_in_full()
    edit_payload(2, {"forged": True})
    older = verify_in_full()
    newer = verify_in_full()

    response = officer_client.post(
        "/officer/ledger/acknowledge/", {"run": older.pk, "reason": "seen it"}
    )

    assert response.status_code == 400
    page = response.content.decode()
    assert f"Full verification #{newer.pk} has found the ledger broken since" in page
    assert f'name="run" value="{newer.pk}"' in page  # offered now, the reason kept
    assert "seen it</textarea>" in page
    assert not LedgerEntry.objects.filter(kind="ledger.acknowledged").exists()


def test_acknowledging_is_for_verified_officers_and_only_by_post(client: Client, household):
    officer, device = make_officer()
    client.force_login(officer)
    edit_payload(2, {"forged": True})
    run = verify_in_full()
    body = {"run": run.pk, "reason": "r"}

    unverified = client.post("/officer/ledger/acknowledge/", body)
    verify_session(client, device)
    by_get = client.get("/officer/ledger/acknowledge/")
    not_officer = Client()
    not_officer.force_login(person("mallory"))

    assert unverified.status_code == 302
    assert by_get.status_code == 405
    assert not_officer.post("/officer/ledger/acknowledge/", body).status_code in (302, 403)
    assert not LedgerEntry.objects.filter(kind="ledger.acknowledged").exists()


@pytest.mark.parametrize("body", [{}, {"run": "x", "reason": "r"}, {"run": "-1", "reason": "r"}])
def test_a_malformed_acknowledgement_is_a_400_not_a_500(officer_client, household, body):
    assert officer_client.post("/officer/ledger/acknowledge/", body).status_code == 400


@pytest.mark.parametrize("name", sorted(REPORTS))
def test_every_report_exports_as_csv(officer_client, household, name):
    response = officer_client.get(f"/officer/reports/{name}.csv")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows and all(rows[0])


def test_an_unknown_report_is_a_404(officer_client):
    assert officer_client.get("/officer/reports/secrets.csv").status_code == 404


def test_csv_cells_cannot_become_spreadsheet_formulas(officer_client, household):
    legal_hold_place(
        account=household.adult.account,
        reason='=HYPERLINK("http://x")',
        case_reference="+C-1",
        actor="test",
    )

    body = officer_client.get("/officer/reports/legal-holds.csv").content.decode()

    assert "'=HYPERLINK" in body and "'+C-1" in body


def test_consent_rates_in_the_export_follow_the_events(officer_client, household):
    from compliance.actions.consent import consent_set

    consent_set(
        profile=household.adult,
        purpose="model_training",
        granted=True,
        channel="app",
        notice_version="1",
        actor="test",
    )
    bob = make_household("bob")  # two more US profiles, none granted

    rows = list(
        csv.DictReader(
            io.StringIO(officer_client.get("/officer/reports/consent-rates.csv").content.decode())
        )
    )
    today = [r for r in rows if r["date"] == timezone.now().date().isoformat()]
    by_key = {(r["jurisdiction"], r["purpose"]): r for r in today}

    assert bob.adult.account.jurisdiction == "US"
    training = by_key[("US", "model_training")]
    assert (training["profiles"], training["granted"], training["rate_percent"]) == (
        "4",
        "1",
        "25.0",
    )
    review = by_key[("US", "human_review")]
    assert review["profiles"] == "2"  # the children never count for human review
