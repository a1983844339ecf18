import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.actions.consent import consent_set
from compliance.ledger import signing
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.models import LedgerKey
from compliance.transfers.services import transfer_rule_create
from earshot_verify.jws import ReceiptError, b64url, receipt_open
from earshot_verify.note import parse_verifier_key
from tests.conftest import postgres_only
from tests.factories import AccountFactory, ProfileFactory

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db, postgres_only()]


@pytest.fixture
def profile():
    profile = ProfileFactory(
        external_id="prof-r", account=AccountFactory(external_id="acct-r", jurisdiction="DE")
    )
    transfer_rule_create(jurisdiction="DE", reviewer_location="RO", actor="t")
    consent_set(profile=profile, purpose="human_review", granted=True, channel="app",
                notice_version="2026-01", actor="t")  # fmt: skip
    consent_set(profile=profile, purpose="human_review", granted=False, channel="web",
                notice_version="2026-02", actor="t")  # fmt: skip
    return profile


def _verify(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "earshot_verify", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_the_latest_consent_receipt_is_signed_and_binds_its_ledger_entry(profile, platform):
    body = platform.get("/api/v1/profiles/prof-r/consents/human_review/receipt").json()

    claims = receipt_open(body["receipt"], parse_verifier_key(signing.signing_key().verifier_key))
    assert claims["ledger"] == {"seq": body["seq"], "leaf_hash": body["leaf_hash"]}
    assert claims["pii_principal"] == "prof-r"
    assert (claims["event"], claims["granted"], claims["method"]) == ("withdrawn", False, "web")
    assert claims["notice_version"] == "2026-02"
    assert claims["recipients"] == ["DE", "RO"]
    assert (claims["legal_basis"], claims["jurisdiction"], claims["source"]) == (
        "consent",
        "DE",
        "explicit",
    )
    assert body["tree_size"] >= body["seq"]  # a checkpoint covers it at once
    assert LedgerKey.objects.filter(use="receipt").exists()


def test_a_default_state_has_no_receipt_claiming_consent(platform):
    ProfileFactory(external_id="prof-d", account=AccountFactory(jurisdiction="DE"))

    response = platform.get("/api/v1/profiles/prof-d/consents/human_review/receipt")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_consent_event"
    assert "default" in response.json()["error"]["message"]


def test_a_receipt_verifies_offline_with_its_bundle_and_tampering_is_refused(
    profile, platform, tmp_path
):
    body = platform.get("/api/v1/profiles/prof-r/consents/human_review/receipt").json()
    key = signing.signing_key().verifier_key
    (tmp_path / "r").write_text(body["receipt"])
    bundle = ledger_proof_bundle(seqs=[body["seq"]])
    (tmp_path / "b.json").write_text(json.dumps(bundle))
    header, claims, signature = body["receipt"].split(".")
    forged = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged["event"] = "given"
    (tmp_path / "forged").write_text(f"{header}.{b64url(json.dumps(forged).encode())}.{signature}")
    other = bundle | {"entries": [dict(bundle["entries"][0], seq=1)]}
    (tmp_path / "other.json").write_text(json.dumps(other))

    sound = _verify(
        "receipt", str(tmp_path / "r"), "--key", key, "--bundle", str(tmp_path / "b.json")
    )
    alone = _verify("receipt", str(tmp_path / "r"), "--key", key)
    tampered = _verify("receipt", str(tmp_path / "forged"), "--key", key)
    wrong_key = _verify(
        "receipt", str(tmp_path / "r"), "--key",
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    )  # fmt: skip

    assert sound.returncode == 0, sound.stderr
    assert "bound to ledger entry" in sound.stdout
    assert alone.returncode == 0, alone.stderr
    assert tampered.returncode == 1
    assert "signature does not verify" in tampered.stderr
    assert wrong_key.returncode == 1
    unbound = _verify("receipt", str(tmp_path / "r"), "--key", key, "--bundle",
                      str(tmp_path / "other.json"))  # fmt: skip
    assert unbound.returncode == 1


def test_a_receipt_with_another_alg_or_a_bad_signature_is_refused(profile, platform):
    body = platform.get("/api/v1/profiles/prof-r/consents/human_review/receipt").json()
    verifier = parse_verifier_key(signing.signing_key().verifier_key)
    header, claims, signature = body["receipt"].split(".")
    none_alg = b64url(b'{"alg":"none"}')

    with pytest.raises(ReceiptError, match="EdDSA"):
        receipt_open(f"{none_alg}.{claims}.{signature}", verifier)
    with pytest.raises(ReceiptError, match="signature"):
        receipt_open(f"{header}.{claims}.{b64url(bytes(64))}", verifier)
