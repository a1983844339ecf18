"""The offline verifier, run as an auditor runs it: a separate process, fed files."""

import base64
import json
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.ledger import signing
from compliance.ledger.bundles import ledger_proof_bundle
from compliance.ledger.checkpoints import checkpoint_text, ledger_checkpoint_issue
from compliance.ledger.models import LedgerEntry
from tests.conftest import postgres_only
from tests.ledger.conftest import append

ROOT = Path(__file__).resolve().parent.parent
OTHER_KEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
OTHER_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "earshot_verify", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def write(tmp_path: Path, name: str, content: object) -> str:
    path = tmp_path / name
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return str(path)


def test_the_verifier_imports_nothing_of_django_or_the_service():
    code = (
        "import sys, earshot_verify.__main__;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('django', 'compliance', 'config',"
        " 'rest_framework', 'celery')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.fixture
def signed(db) -> dict:
    """Eight entries: a checkpoint at 5, kept by the auditor, then one at 8."""
    append(5)
    early = ledger_checkpoint_issue()
    append(3)
    ledger_checkpoint_issue()
    return {
        "key": signing.signing_key().verifier_key,
        "early": early.note,
        "bundle": ledger_proof_bundle(
            seqs=[2, 7],
            since_size=5,
            records={7: {"kind": "consent.granted", "payload": {"i": 1}}},
        ),
    }


pytestmark = postgres_only()


def test_a_sound_bundle_and_its_checkpoint_verify(signed, tmp_path):
    bundle = write(tmp_path, "bundle.json", signed["bundle"])
    early = write(tmp_path, "early", signed["early"])
    key_file = write(tmp_path, "key", signed["key"] + "\n")

    with_text_key = run(bundle, "--key", signed["key"], "--checkpoint", early)
    with_key_file = run(bundle, "--key", key_file)

    assert with_text_key.returncode == 0, with_text_key.stderr
    assert "2 entries proven" in with_text_key.stdout
    assert with_key_file.returncode == 0, with_key_file.stderr


def _tampered(signed: dict, change) -> dict:
    bundle = json.loads(json.dumps(signed["bundle"]))
    change(bundle)
    return bundle


def _flip_record(bundle: dict) -> None:
    bundle["entries"][1]["record"]["payload"]["i"] = 2


def _forge_leaf(bundle: dict) -> None:
    leaf = json.loads(base64.b64decode(bundle["entries"][1]["leaf"]))
    leaf["payload"]["i"] = 2
    bundle["entries"][1]["leaf"] = base64.b64encode(json.dumps(leaf).encode()).decode()
    del bundle["entries"][1]["leaf_hash"]


def _bad_proof(bundle: dict) -> None:
    bundle["entries"][0]["inclusion"][0] = base64.b64encode(bytes(32)).decode()


def _reorder(bundle: dict) -> None:
    bundle["entries"].reverse()


def _forge_checkpoint(bundle: dict) -> None:
    bundle["checkpoint"] = bundle["checkpoint"].replace("\n8\n", "\n9\n")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_flip_record, "record.payload.i is 2 but the leaf records 1"),
        (_forge_leaf, "inclusion proof does not reach the checkpoint"),
        (_bad_proof, "ledger entry #2): the inclusion proof does not reach"),
        (_reorder, "not in ledger order"),
        (_forge_checkpoint, "does not verify"),
    ],
    ids=["flipped value", "forged leaf", "bad inclusion proof", "reordered", "forged checkpoint"],
)
def test_a_tampered_bundle_is_refused_naming_what_fails(signed, tmp_path, change, named):
    bundle = write(tmp_path, "bundle.json", _tampered(signed, change))

    result = run(bundle, "--key", signed["key"])

    assert result.returncode == 1
    assert named in result.stderr, result.stderr


def test_a_bundle_under_another_key_is_refused(signed, tmp_path):
    result = run(write(tmp_path, "bundle.json", signed["bundle"]), "--key", OTHER_KEY)

    assert result.returncode == 1
    assert "not signed by the key PeterNeumann" in result.stderr


def test_a_checkpoint_inconsistent_with_an_earlier_one_is_refused(signed, tmp_path):
    # the operator rewrote the log and signed a new tree of the same key: the auditor's
    # earlier checkpoint does not lead to it
    key = signing.signing_key()
    forged_root = bytes(32)
    forged = key.sign_note(
        checkpoint_text(origin="earshot.local/ledger", tree_size=8, root=forged_root)
    )
    bundle = dict(signed["bundle"], checkpoint=forged, entries=[])

    result = run(
        write(tmp_path, "bundle.json", bundle),
        "--key",
        signed["key"],
        "--checkpoint",
        write(tmp_path, "early", signed["early"]),
    )

    assert result.returncode == 1
    assert "not consistent with the earlier one of size 5" in result.stderr


def test_a_shorter_checkpoint_than_the_one_kept_is_refused(signed, tmp_path):
    later = LedgerEntry.objects.count()
    assert later == 8
    result = run(
        "checkpoint",
        write(tmp_path, "cp", signed["early"]),
        "--key",
        signed["key"],
        "--checkpoint",
        write(tmp_path, "kept", signed["bundle"]["checkpoint"]),
    )

    assert result.returncode == 1
    assert "smaller than the earlier one of size 8: the log was shortened" in result.stderr


def test_a_checkpoint_verifies_alone_and_against_an_earlier_one_with_a_proof(signed, tmp_path):
    later = write(tmp_path, "cp", signed["bundle"]["checkpoint"])
    early = write(tmp_path, "early", signed["early"])
    proof = write(tmp_path, "proof.json", signed["bundle"]["consistency"])

    alone = run("checkpoint", later, "--key", signed["key"])
    linked = run("checkpoint", later, "--key", signed["key"], "--checkpoint", early,
                 "--consistency", proof)  # fmt: skip
    wrong_key = run("checkpoint", later, "--key", OTHER_KEY)
    other = signing.signing_key_parse(OTHER_SIGNER).sign_note(
        checkpoint_text(origin="x", tree_size=1, root=bytes(32))
    )
    forged = run("checkpoint", write(tmp_path, "f", other), "--key", signed["key"])

    assert (alone.returncode, linked.returncode) == (0, 0), alone.stderr + linked.stderr
    assert "size 8" in alone.stdout
    assert wrong_key.returncode == 1
    assert forged.returncode == 1
    assert "not signed by the key" in forged.stderr


def test_a_malformed_key_is_refused(signed, tmp_path):
    result = run(write(tmp_path, "b.json", signed["bundle"]), "--key", "nonsense")

    assert result.returncode == 1
    assert "the key: malformed verifier key" in result.stderr


def test_a_saved_error_answer_is_named_as_one_not_as_a_malformed_note(signed, tmp_path):
    answer = {
        "error": {
            "code": "no_checkpoint",
            "message": "No checkpoint has been signed yet.",
            "fields": {},
        }
    }

    result = run("checkpoint", write(tmp_path, "kept.checkpoint", answer), "--key", signed["key"])

    assert result.returncode == 1
    assert (
        "this is an error answer from the server, not a checkpoint: "
        "no_checkpoint: No checkpoint has been signed yet." in result.stderr
    )
    assert "malformed note" not in result.stderr
