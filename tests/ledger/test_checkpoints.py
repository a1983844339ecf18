import base64
import logging
import threading
from datetime import UTC, datetime
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import transaction

from compliance.ledger import signing, tree
from compliance.ledger.checkpoints import (
    CheckpointRefused,
    ExportConflict,
    ledger_checkpoint_covering,
    ledger_checkpoint_issue,
    ledger_export_checkpoints,
)
from compliance.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerKey, LedgerTreeNode
from earshot_verify.merkle import root_from_leaf_hashes
from earshot_verify.note import NoteError, open_checkpoint, open_note, parse_verifier_key
from tests.conftest import postgres_only
from tests.ledger.conftest import TABLE, append, sql, tampering

# golang.org/x/mod/sumdb/note's own example: the same key must give the same bytes.
GO_SIGNER = "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VERIFIER = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n"
)
GO_NOTE = (
    GO_TEXT + "\n\u2014 PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FF"
    "YC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
)


def test_notes_are_signed_and_opened_byte_for_byte_as_go_sumdb_note_does():
    key = signing.signing_key_parse(GO_SIGNER)

    assert key.verifier_key == GO_VERIFIER
    assert key.signer_key() == GO_SIGNER
    assert key.sign_note(GO_TEXT) == GO_NOTE
    assert open_note(GO_NOTE, parse_verifier_key(GO_VERIFIER)) == GO_TEXT


@pytest.mark.parametrize(
    "note",
    [
        GO_NOTE.replace("cryptography", "cryptographY"),
        GO_NOTE.replace("x08go", "x08gp"),
        GO_NOTE.replace("PeterNeumann", "Other"),
        GO_TEXT,
    ],
    ids=["text changed", "signature changed", "other signer", "unsigned"],
)
def test_a_note_that_is_not_signed_by_the_key_is_refused(note):
    with pytest.raises(NoteError):
        open_note(note, parse_verifier_key(GO_VERIFIER))


def test_a_verifier_key_with_a_wrong_hash_is_refused():
    with pytest.raises(NoteError, match="hash"):
        parse_verifier_key(GO_VERIFIER.replace("c74f20a3", "c74f20a4"))


def test_ledger_keygen_prints_a_signer_key_and_its_verifier_key():
    out, err = StringIO(), StringIO()

    call_command("ledger_keygen", "--name", "audit.example/log", stdout=out, stderr=err)

    key = signing.signing_key_parse(out.getvalue().strip().splitlines()[-1])
    assert key.name == "audit.example/log"
    assert key.verifier_key in err.getvalue()


def test_without_a_configured_key_one_is_created_once_and_shared(settings, caplog):
    path = Path(settings.LEDGER_KEY_DIR) / signing.KEY_FILE_NAME
    barrier = threading.Barrier(6)
    keys = []

    def create() -> None:
        barrier.wait()
        keys.append(signing._create_once(path).verifier_key)

    with caplog.at_level(logging.WARNING, logger="compliance.ledger.signing"):
        threads = [threading.Thread(target=create) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    assert len(set(keys)) == 1
    assert signing.signing_key().verifier_key == keys[0]
    assert signing.signing_key_parse(path.read_text()).verifier_key == keys[0]
    assert sum("ledger.signing_key_generated" in r.message for r in caplog.records) == 1


def test_the_key_comes_from_the_setting_as_text_or_as_a_path(settings, tmp_path):
    settings.LEDGER_SIGNING_KEY = GO_SIGNER
    signing._load.cache_clear()
    assert signing.signing_key().verifier_key == GO_VERIFIER

    (tmp_path / "k").write_text(GO_SIGNER + "\n")
    settings.LEDGER_SIGNING_KEY = str(tmp_path / "k")
    signing._load.cache_clear()
    assert signing.signing_key().verifier_key == GO_VERIFIER


# --- checkpoints ----------------------------------------------------------------------------


def _verifier():
    return parse_verifier_key(signing.signing_key().verifier_key)


def _leaf_hashes() -> list[bytes]:
    rows = LedgerEntry.objects.order_by("seq").values_list("leaf_hash", flat=True)
    return [bytes(h) for h in rows]


@postgres_only()
@pytest.mark.django_db
def test_a_checkpoint_signs_the_root_of_every_committed_entry_and_is_published(settings):
    append(5)

    checkpoint = ledger_checkpoint_issue()

    opened = open_checkpoint(checkpoint.note, _verifier(), origin=settings.LEDGER_ORIGIN)
    assert (opened.tree_size, opened.root_hash) == (5, root_from_leaf_hashes(_leaf_hashes()))
    assert checkpoint.note.splitlines()[:2] == [settings.LEDGER_ORIGIN, "5"]
    assert ledger_export_checkpoints() == [checkpoint.note]
    exported = (Path(settings.LEDGER_EXPORT) / "entries" / f"{1:020d}-{5:020d}").read_text()
    assert [line.split()[0] for line in exported.splitlines()] == ["1", "2", "3", "4", "5"]
    leaf = base64.b64decode(exported.splitlines()[2].split()[1])
    assert leaf == bytes(LedgerEntry.objects.get(seq=3).leaf)
    key = LedgerKey.objects.get()
    assert (key.use, key.retired_at) == ("checkpoint", None)


@postgres_only()
@pytest.mark.django_db
def test_a_checkpoint_is_signed_only_when_the_log_grew_and_extends_the_last():
    append(5)
    first = ledger_checkpoint_issue()
    assert ledger_checkpoint_issue().pk == first.pk  # nothing new

    append(3)
    second = ledger_checkpoint_issue()

    assert (first.tree_size, second.tree_size) == (5, 8)
    assert len(ledger_export_checkpoints()) == 2
    assert bytes(second.root_hash) == root_from_leaf_hashes(_leaf_hashes())


@postgres_only()
@pytest.mark.django_db
def test_on_demand_checkpoints_come_at_most_once_a_second(time_machine):
    time_machine.move_to(datetime.now(UTC))
    append(2)
    first = ledger_checkpoint_covering(seq=2)
    append(1)

    held = ledger_checkpoint_covering(seq=3, wait_seconds=0)
    time_machine.shift(1.5)
    covering = ledger_checkpoint_covering(seq=3, wait_seconds=0)

    assert first.tree_size == 2
    assert held.pk == first.pk
    assert covering.tree_size == 3
    assert ledger_checkpoint_covering(seq=99) is None


@postgres_only()
@pytest.mark.django_db
def test_a_rewritten_ledger_is_never_signed():
    append(5)
    ledger_checkpoint_issue()
    # the tamperer rewrites entry 3 and rebuilds the whole tree from the rewritten entries
    with tampering():
        sql(f"UPDATE {TABLE} SET leaf_hash = %s WHERE seq = 3", [b"\x01" * 32])  # noqa: S608
    LedgerTreeNode.objects.all().delete()
    append(2)

    with pytest.raises(CheckpointRefused, match="not consistent with checkpoint 5"):
        ledger_checkpoint_issue()

    assert list(LedgerCheckpoint.objects.values_list("tree_size", flat=True)) == [5]
    assert len(ledger_export_checkpoints()) == 1


@postgres_only()
@pytest.mark.django_db
def test_a_gap_in_the_ledger_is_never_signed():
    append(5)
    with tampering():
        sql(f"DELETE FROM {TABLE} WHERE seq = 2", [])  # noqa: S608

    with pytest.raises(CheckpointRefused, match="#2 is missing"):
        ledger_checkpoint_issue()

    assert not LedgerCheckpoint.objects.exists()
    assert tree.tree_size() == 0 or tree.tree_size() == 1


@postgres_only()
@pytest.mark.django_db
def test_an_exported_file_is_never_rewritten(settings):
    append(2)
    path = Path(settings.LEDGER_EXPORT) / "checkpoints" / f"{2:020d}"
    path.parent.mkdir(parents=True)
    path.write_text("someone else's checkpoint\n")

    with pytest.raises(ExportConflict), transaction.atomic():
        ledger_checkpoint_issue()

    assert path.read_text() == "someone else's checkpoint\n"
    assert not LedgerCheckpoint.objects.exists()


@postgres_only()
@pytest.mark.django_db
def test_a_new_key_retires_the_old_one_and_old_checkpoints_still_verify(settings):
    append(2)
    old = ledger_checkpoint_issue()
    old_verifier = _verifier()
    settings.LEDGER_SIGNING_KEY = GO_SIGNER
    signing._load.cache_clear()
    append(1)

    new = ledger_checkpoint_issue()

    open_checkpoint(old.note, old_verifier)
    open_checkpoint(new.note, parse_verifier_key(GO_VERIFIER))
    keys = dict(LedgerKey.objects.values_list("name", "retired_at"))
    assert keys["PeterNeumann"] is None
    assert keys[settings.LEDGER_ORIGIN] is not None


def test_the_beat_signs_checkpoints_every_minute(settings):
    assert settings.CELERY_BEAT_SCHEDULE["ledger-checkpoint"] == {
        "task": "ledger.checkpoint",
        "schedule": 60.0,
    }


def test_a_verifier_key_whose_base64_holds_a_plus_is_read():
    # transparency-dev/formats' test key: its base64 contains a '+'
    verifier = parse_verifier_key("TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6")

    assert (verifier.name, verifier.key_hash) == ("TEST", 0x7997405C)
