"""GET /api/v1/profiles/{id}/purge-receipts: a signed receipt per retention purge batch
that deleted the profile's recordings, naming only its own."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIClient

from compliance.ledger import signing
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.models import LedgerEntry
from compliance.retention import purge
from compliance.retention.services import retention_policies_apply, retention_policy_create
from earshot_verify.jws import receipt_open
from earshot_verify.note import parse_verifier_key
from earshot_verify.verify import VerificationFailed, receipt_bound, receipt_self_bound
from tests.conftest import postgres_only
from tests.factories import AccountFactory, ProfileFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db, postgres_only()]


@pytest.fixture
def purged(ingest):
    """One purge batch over two profiles' expired recordings."""
    owner = UserFactory(username="purged-owner")
    mine = ProfileFactory(external_id="prof-mine", account=AccountFactory(user=owner))
    theirs = ProfileFactory(external_id="prof-theirs")
    for category in ("audio", "transcript"):
        retention_policy_create(jurisdiction="*", category=category, retention_days=1,
                                applies_to="all", actor="test")  # fmt: skip
    retention_policies_apply()
    ingest(mine, days_ago=10, external_id="rec-mine-1")
    ingest(mine, days_ago=11, external_id="rec-mine-2")
    ingest(theirs, days_ago=10, external_id="rec-theirs-1")
    assert purge.purge_expired().recordings_purged == 3
    client = APIClient()
    client.force_login(owner)
    return {"owner": client, "entry": LedgerEntry.objects.get(kind="purge.batch")}


def _verifier():
    return parse_verifier_key(signing.signing_key().verifier_key)


def test_each_profile_gets_a_receipt_naming_only_its_own_recordings(purged, platform):
    entry = purged["entry"]
    mine = purged["owner"].get("/api/v1/profiles/prof-mine/purge-receipts")
    theirs = platform.get("/api/v1/profiles/prof-theirs/purge-receipts")

    assert mine.status_code == 200, mine.content
    assert theirs.status_code == 200, theirs.content
    [receipt] = mine.json()["receipts"]
    assert receipt["seq"] == entry.seq
    assert sorted(receipt["recordings"]) == ["rec-mine-1", "rec-mine-2"]
    claims = receipt_open(receipt["receipt"], _verifier())
    assert claims["pii_principal"] == "prof-mine"
    assert sorted(r["recording"] for r in claims["recordings"]) == ["rec-mine-1", "rec-mine-2"]
    assert claims["rule"]["reasons"] == ["retention_policy"]
    assert claims["purged_at"] == receipt["purged_at"]
    assert claims["ledger"]["seq"] == entry.seq
    assert claims["ledger"]["leaf_hash"] == base64.b64encode(bytes(entry.leaf_hash)).decode()
    assert "rec-theirs-1" not in json.dumps(claims)
    receipt_self_bound(claims)
    assert receipt_bound(claims, ledger_proof_bundle(seqs=[entry.seq]), _verifier())
    [other] = theirs.json()["receipts"]
    assert other["recordings"] == ["rec-theirs-1"]
    assert "rec-mine" not in json.dumps(receipt_open(other["receipt"], _verifier()))


def test_a_receipt_signed_over_another_list_of_recordings_is_refused(purged):
    body = purged["owner"].get("/api/v1/profiles/prof-mine/purge-receipts").json()
    claims = receipt_open(body["receipts"][0]["receipt"], _verifier())
    claims["recordings"] = claims["recordings"][:1]

    with pytest.raises(VerificationFailed, match="recordings are not what the part records"):
        receipt_self_bound(claims)


def test_the_command_line_verifier_accepts_it_and_refuses_a_tampered_one(purged, tmp_path):
    body = purged["owner"].get("/api/v1/profiles/prof-mine/purge-receipts").json()
    token = body["receipts"][0]["receipt"]
    header, claims, signature = token.split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["recordings"] = forged["recordings"][:1]
    (tmp_path / "r").write_text(token)
    (tmp_path / "forged").write_text(
        f"{header}.{base64.urlsafe_b64encode(json.dumps(forged).encode()).rstrip(b'=').decode()}"
        f".{signature}"
    )
    (tmp_path / "resigned").write_text(signing.receipt_sign(forged))
    key = signing.signing_key().verifier_key

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "earshot_verify", "receipt", str(tmp_path / name), "--key", key],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    sound, tampered, resigned = run("r"), run("forged"), run("resigned")

    assert sound.returncode == 0, sound.stderr
    assert f"ledger entry #{purged['entry'].seq}" in sound.stdout
    assert tampered.returncode == 1
    assert "signature does not verify" in tampered.stderr
    assert resigned.returncode == 1
    assert "recordings are not what the part records" in resigned.stderr


def test_another_user_is_told_it_does_not_exist_and_a_client_needs_the_scope(
    purged, api_client_with_scopes
):
    url = "/api/v1/profiles/prof-mine/purge-receipts"
    stranger = APIClient()
    stranger.force_login(UserFactory(username="stranger"))

    assert stranger.get(url).status_code == 404
    assert api_client_with_scopes("deletions:write").get(url).status_code == 403
    assert api_client_with_scopes("ledger:read").get(url).status_code == 200


def test_a_profile_without_purges_has_no_receipts(platform):
    ProfileFactory(external_id="prof-kept")

    response = platform.get("/api/v1/profiles/prof-kept/purge-receipts")

    assert response.status_code == 200
    assert response.json() == {"receipts": []}
