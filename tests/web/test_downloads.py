"""Receipts and evidence bundles as downloads: end users from the privacy page (their
own profiles only), officers from the dashboard (any profile)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.test import Client

from compliance.actions.consent import consent_set
from compliance.ledger import signing
from compliance.retention import deletion_requests, purge
from compliance.retention.services import (
    deletion_request_create,
    retention_policies_apply,
    retention_policy_create,
)
from tests.conftest import postgres_only
from tests.web.conftest import make_household

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db, postgres_only()]


def _verify(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    key = signing.signing_key().verifier_key
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "earshot_verify", *args, "--key", key],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def _attachment(response, suffix: str) -> bytes:
    assert response.status_code == 200, response.content
    disposition = response["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith(f'{suffix}"')
    return response.content


@pytest.fixture
def chosen(household):
    consent_set(profile=household.adult, purpose="human_review", granted=True, channel="web",
                notice_version="n1", actor="t")  # fmt: skip
    request = deletion_request_create(
        profile=household.adult, recorded_from=None, recorded_to=None, actor="t"
    )
    deletion_requests.deletion_request_run(public_id=request.public_id)
    return request


def test_the_privacy_page_links_the_owners_receipts_and_evidence(owner_client, chosen):
    page = owner_client.get("/privacy/").content.decode()
    status = owner_client.get(f"/privacy/deletions/{chosen.public_id}/").content.decode()

    assert "/privacy/profiles/prof-alice/consents/human_review/receipt.jws" in page
    assert "/privacy/profiles/prof-alice/evidence.json" in page
    # a default state has no receipt, so no link
    assert "/privacy/profiles/prof-alice/consents/model_training/receipt.jws" not in page
    assert f"/privacy/deletions/{chosen.public_id}/receipt.jws" in status


def test_the_owner_downloads_receipts_and_evidence_that_verify_offline(
    owner_client, chosen, tmp_path
):
    consent = _attachment(
        owner_client.get("/privacy/profiles/prof-alice/consents/human_review/receipt.jws"), ".jws"
    )
    deletion = _attachment(
        owner_client.get(f"/privacy/deletions/{chosen.public_id}/receipt.jws"), ".jws"
    )
    evidence = _attachment(owner_client.get("/privacy/profiles/prof-alice/evidence.json"), ".json")

    for name, content in (("c.jws", consent), ("d.jws", deletion)):
        (tmp_path / name).write_bytes(content)
        result = _verify(tmp_path, "receipt", str(tmp_path / name))
        assert result.returncode == 0, result.stderr
    (tmp_path / "bundle.json").write_bytes(evidence)
    result = _verify(tmp_path, str(tmp_path / "bundle.json"))
    assert result.returncode == 0, result.stderr
    assert json.loads(evidence)["profile"] == "prof-alice"


def test_another_persons_receipts_and_evidence_do_not_exist_for_the_user(chosen):
    make_household("bob")
    bob = Client()
    bob.force_login(make_household("carol").user)

    for path in (
        "/privacy/profiles/prof-alice/consents/human_review/receipt.jws",
        "/privacy/profiles/prof-alice/evidence.json",
        f"/privacy/deletions/{chosen.public_id}/receipt.jws",
    ):
        assert bob.get(path).status_code == 404, path
        assert Client().get(path).status_code == 302, path  # to sign in


def test_a_state_from_the_default_has_no_receipt_and_says_so(owner_client, household):
    response = owner_client.get("/privacy/profiles/prof-alice/consents/model_training/receipt.jws")

    assert response.status_code == 404
    assert "default" in response.content.decode()


def test_an_officer_finds_a_profile_and_downloads_its_evidence_and_receipts(officer_client, chosen):
    dashboard = officer_client.get("/officer/").content.decode()
    page = officer_client.get("/officer/evidence/?profile=prof-alice")
    missing = officer_client.get("/officer/evidence/?profile=nobody")

    assert "/officer/evidence/" in dashboard
    assert page.status_code == 200
    links = page.content.decode()
    assert "/officer/profiles/prof-alice/evidence.json" in links
    assert f"/officer/deletions/{chosen.public_id}/receipt.jws" in links
    # a receipt only where the person chose: no link to one that does not exist
    assert "/officer/profiles/prof-alice/consents/human_review/receipt.jws" in links
    assert "/officer/profiles/prof-alice/consents/model_training/receipt.jws" not in links
    assert missing.status_code == 404
    _attachment(officer_client.get("/officer/profiles/prof-alice/evidence.json"), ".json")
    _attachment(
        officer_client.get("/officer/profiles/prof-alice/consents/human_review/receipt.jws"),
        ".jws",
    )
    _attachment(officer_client.get(f"/officer/deletions/{chosen.public_id}/receipt.jws"), ".jws")


def test_the_officer_downloads_need_a_verified_officer(owner_client, chosen):
    for path in (
        "/officer/evidence/?profile=prof-alice",
        "/officer/profiles/prof-alice/evidence.json",
        f"/officer/deletions/{chosen.public_id}/receipt.jws",
    ):
        assert owner_client.get(path).status_code in (302, 403), path


def test_after_a_retention_purge_the_owner_downloads_its_receipts_that_verify_offline(
    owner_client, household, tmp_path
):
    before = owner_client.get("/privacy/").content.decode()
    for category in ("audio", "transcript"):
        retention_policy_create(jurisdiction="*", category=category, retention_days=4,
                                applies_to="all", actor="t")  # fmt: skip
    retention_policies_apply()
    assert purge.purge_expired().recordings_purged == 2
    page = owner_client.get("/privacy/").content.decode()
    body = _attachment(
        owner_client.get("/privacy/profiles/prof-alice/purge-receipts.json"), ".json"
    )
    stranger = Client()
    stranger.force_login(make_household("dora").user)

    assert "/privacy/profiles/prof-alice/purge-receipts.json" not in before
    assert "/privacy/profiles/prof-alice/purge-receipts.json" in page
    assert "/privacy/profiles/prof-alice-kid/purge-receipts.json" not in page  # kept: 3 days
    [receipt] = json.loads(body)["receipts"]
    assert sorted(receipt["recordings"]) == ["rec-alice-5", "rec-alice-9"]
    (tmp_path / "purge.jws").write_text(receipt["receipt"])
    verified = _verify(tmp_path, "receipt", str(tmp_path / "purge.jws"))
    assert verified.returncode == 0, verified.stderr
    assert stranger.get("/privacy/profiles/prof-alice/purge-receipts.json").status_code == 404
