"""verify_ledger holds the database against the newest checkpoint published outside it:
the tamperer here rewrites the database consistently (chain, leaves, hashes), which the
chain alone cannot see; the published checkpoint can."""

import hashlib
import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from compliance.ledger.canonical import entry_leaf, leaf_hash
from compliance.ledger.checkpoints import checkpoint_text, ledger_checkpoint_issue
from compliance.ledger.models import LedgerEntry
from compliance.ledger.signing import signing_key_parse
from tests.conftest import postgres_only
from tests.ledger.conftest import TABLE, append, delete_newest, sql, tampering, verify_in_full

pytestmark = [pytest.mark.django_db, postgres_only()]

NAMED = "contradicts signed checkpoint 8 (earshot.local/ledger)"


@pytest.fixture
def published() -> None:
    """Eight entries under a published checkpoint, and two more since."""
    append(8)
    ledger_checkpoint_issue()
    append(2)


def _fails() -> str:
    with pytest.raises(CommandError) as failed:
        call_command("verify_ledger", stdout=StringIO())
    return str(failed.value)


def reforge_everything_from(seq: int, payload: dict) -> None:
    """Rewrite entry `seq` and recompute every later link, leaf, leaf hash and hash: a
    database that is consistent in itself."""
    prev_hash = None
    with tampering():
        for entry in LedgerEntry.objects.filter(seq__gte=seq).order_by("seq"):
            if entry.seq == seq:
                entry.payload = payload
            else:
                entry.prev_hash = prev_hash
            leaf = entry_leaf(
                seq=entry.seq,
                created_at=entry.created_at,
                kind=entry.kind,
                subject=entry.subject,
                actor=entry.actor,
                payload=entry.payload,
                prev_hash=entry.prev_hash,
            )
            entry.hash = hashlib.sha256(leaf).hexdigest()
            sql(
                f"UPDATE {TABLE} SET payload = %s, prev_hash = %s, hash = %s, leaf = %s, "  # noqa: S608
                "leaf_hash = %s WHERE id = %s",
                [json.dumps(entry.payload), entry.prev_hash, entry.hash, leaf, leaf_hash(leaf),
                 entry.pk],
            )  # fmt: skip
            prev_hash = entry.hash


def test_an_intact_ledger_holds_against_the_published_checkpoint(published):
    run = verify_in_full()

    assert run.status == "intact"
    out = StringIO()
    call_command("verify_ledger", stdout=out)
    assert "ledger OK: 10 entries" in out.getvalue()


def test_a_shortened_ledger_contradicts_the_checkpoint(published):
    delete_newest(5)  # 10 -> 5, below the checkpoint's 8

    run = verify_in_full()

    assert (run.status, run.problem_seq) == ("broken", 6)
    assert "holds 5 entries but signed checkpoint 8" in run.problem
    assert "older backup" in run.problem
    assert "#6" in _fails()


def test_a_rewrite_rehashed_onwards_contradicts_the_checkpoint_and_names_the_entry(published):
    reforge_everything_from(4, {"forged": True})

    run = verify_in_full()

    assert (run.status, run.problem_seq) == ("broken", 4)
    assert NAMED in run.problem
    assert "rewritten" in run.problem
    assert NAMED in _fails()


def test_a_reorder_contradicts_the_checkpoint(published):
    with tampering():
        sql(f"UPDATE {TABLE} SET seq = -3 WHERE seq = 3", [])  # noqa: S608
        sql(f"UPDATE {TABLE} SET seq = 3 WHERE seq = 4", [])  # noqa: S608
        sql(f"UPDATE {TABLE} SET seq = 4 WHERE seq = -3", [])  # noqa: S608

    assert verify_in_full().status == "broken"
    message = _fails()

    assert "#3" in message
    assert NAMED in message


def test_a_stored_leaf_rewritten_alone_contradicts_the_checkpoint(published):
    with tampering():
        sql(f"UPDATE {TABLE} SET leaf = %s WHERE seq = 2", [b'{"forged":1}'])  # noqa: S608

    run = verify_in_full()

    assert (run.status, run.problem_seq) == ("broken", 2)
    assert "stored leaf does not match its hash" in run.problem
    assert NAMED in run.problem


def test_an_exported_checkpoint_no_published_key_signed_is_ignored(published, settings):
    stranger = signing_key_parse(
        "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
    )
    forged = stranger.sign_note(checkpoint_text(origin="x", tree_size=99, root=bytes(32)))
    path = Path(settings.LEDGER_EXPORT) / "checkpoints" / f"{99:020d}"
    path.write_text(forged)

    assert verify_in_full().status == "intact"
