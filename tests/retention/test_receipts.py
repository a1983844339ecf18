"""GET /api/v1/deletion-requests/{id}/receipt: a signed receipt for a done deletion."""

import base64
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from compliance.ledger import signing
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.models import LedgerEntry
from compliance.retention import deletion_requests
from compliance.retention.services import deletion_request_create, legal_hold_place
from earshot_verify.jws import ReceiptError, b64url, receipt_open
from earshot_verify.note import parse_verifier_key
from earshot_verify.verify import receipt_bound
from tests.conftest import postgres_only
from tests.factories import AccountFactory, ProfileFactory, UserFactory

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db, postgres_only()]


@pytest.fixture
def done(ingest):
    """A request over four days of the owner's recordings, one of them under a hold."""
    owner = UserFactory(username="deleter")
    profile = ProfileFactory(external_id="prof-del", account=AccountFactory(user=owner))
    for days in (2, 3, 4, 20):
        ingest(profile, days_ago=days)
    now = timezone.now()
    legal_hold_place(profile=profile, recorded_from=now - timedelta(days=3, hours=12),
                     recorded_to=now - timedelta(days=2, hours=12), reason="litigation",
                     case_reference="C-9", actor="t")  # fmt: skip
    request = deletion_request_create(
        profile=profile, recorded_from=now - timedelta(days=5), recorded_to=now, actor="owner"
    )
    deletion_requests.deletion_request_run(public_id=request.public_id)
    request.refresh_from_db()
    client = APIClient()
    client.force_login(owner)
    return {"request": request, "owner": client}


def _verifier():
    return parse_verifier_key(signing.signing_key().verifier_key)


def test_the_receipt_verifies_offline_and_binds_the_completion_entry(done):
    request = done["request"]
    response = done["owner"].get(f"/api/v1/deletion-requests/{request.public_id}/receipt")

    assert response.status_code == 200, response.content
    body = response.json()
    claims = receipt_open(body["receipt"], _verifier())
    entry = LedgerEntry.objects.get(
        kind="deletion_request.done", payload__request=request.public_id
    )
    leaf_hash = base64.b64encode(bytes(entry.leaf_hash)).decode()
    assert claims["ledger"] == {"seq": entry.seq, "leaf_hash": leaf_hash}
    assert (body["seq"], body["leaf_hash"]) == (entry.seq, leaf_hash)
    assert claims["request"] == request.public_id
    assert claims["pii_principal"] == "prof-del"
    assert (claims["recordings_deleted"], claims["recordings_held"]) == (2, 1)
    assert claims["legal_holds"] == 1
    assert claims["rule"]["recorded_from"] == request.recorded_from.isoformat()
    assert claims["rule"]["recorded_to"] == request.recorded_to.isoformat()
    assert claims["completed_at"] == request.finished_at.isoformat()
    assert body["tree_size"] >= entry.seq
    # bound to its entry in a verified proof bundle
    assert receipt_bound(claims, ledger_proof_bundle(seqs=[entry.seq]), _verifier())


def test_the_command_line_verifier_accepts_it_and_refuses_a_tampered_one(done, tmp_path):
    request = done["request"]
    body = done["owner"].get(f"/api/v1/deletion-requests/{request.public_id}/receipt").json()
    header, claims, signature = body["receipt"].split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["recordings_held"] = 0
    (tmp_path / "r").write_text(body["receipt"])
    (tmp_path / "forged").write_text(f"{header}.{b64url(json.dumps(forged).encode())}.{signature}")
    key = signing.signing_key().verifier_key

    def run(name: str) -> subprocess.CompletedProcess:
        return subprocess.run(  # noqa: S603
            [sys.executable, "-m", "earshot_verify", "receipt", str(tmp_path / name), "--key", key],
            cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    sound, tampered = run("r"), run("forged")

    assert sound.returncode == 0, sound.stderr
    assert f"ledger entry #{body['seq']}" in sound.stdout
    assert tampered.returncode == 1
    assert "signature does not verify" in tampered.stderr
    with pytest.raises(ReceiptError):
        receipt_open(f"{header}.{b64url(json.dumps(forged).encode())}.{signature}", _verifier())


def test_no_receipt_before_the_request_is_done(platform):
    profile = ProfileFactory(external_id="prof-wait")
    request = deletion_request_create(profile=profile, recorded_from=None, recorded_to=None,
                                      actor="t")  # fmt: skip

    response = platform.get(f"/api/v1/deletion-requests/{request.public_id}/receipt")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "deletion_not_done"


def test_another_user_is_told_it_does_not_exist_and_a_client_needs_the_scope(
    done, api_client_with_scopes
):
    url = f"/api/v1/deletion-requests/{done['request'].public_id}/receipt"
    stranger = APIClient()
    stranger.force_login(UserFactory(username="stranger"))

    assert stranger.get(url).status_code == 404
    assert api_client_with_scopes("ledger:read").get(url).status_code == 403
    assert api_client_with_scopes("deletions:write").get(url).status_code == 200
