"""A database restored from an older backup beside an export that went on: appending,
purging and sampling stop (and `/readyz` says why) until `ledger_recover` re-imports the
missing entries verbatim and re-applies their effects. With a real pg_dump/pg_restore."""

import base64
import json
import logging
import shutil
import subprocess
import sys
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection, connections, transaction
from django.utils import timezone

from compliance.actions.consent import consent_set
from compliance.actions.ingest import recording_create
from compliance.consent.evidence import profile_evidence
from compliance.consent.models import ConsentState
from compliance.core.errors import ApplicationError
from compliance.ledger.checkpoints import (
    export_leaves,
    export_parts,
    export_read,
    ledger_checkpoint_issue,
)
from compliance.ledger.models import LedgerCheckpoint, LedgerEntry, LedgerEntryPart
from compliance.ledger.restore import (
    BEHIND,
    OK,
    OTHER_HISTORY,
    ledger_export_state,
    ledger_export_state_forget,
)
from compliance.ledger.services import ledger_append
from compliance.ledger.signing import signing_key
from compliance.recordings.models import Recording
from compliance.recordings.services import RecordingInput
from compliance.retention import tasks as retention_tasks
from compliance.retention.deletion_requests import deletion_request_run
from compliance.retention.models import DeletionRequest, LegalHold
from compliance.retention.purge import purge_expired
from compliance.retention.services import (
    deletion_request_create,
    legal_hold_place,
    legal_hold_release,
    retention_policies_apply,
    retention_policy_create,
)
from compliance.sampling.models import ReviewItem
from compliance.sampling.services import SampleRequest, review_item_audio_open, sample_draw
from config.celery import app as celery_app
from tests.conftest import postgres_only
from tests.factories import ProfileFactory, ReviewerFactory
from tests.ledger.conftest import append, append_with_parts, delete_newest, delete_parts_after
from tests.sampling.conftest import LINK

pytestmark = postgres_only()
ROOT = Path(__file__).resolve().parent.parent.parent


class _Broker:
    @contextmanager
    def __call__(self):
        yield self

    def ensure_connection(self, **kwargs):
        return None


def _ingest(profile, external_id: str, *, days_ago: float = 1) -> Recording:
    return recording_create(
        data=RecordingInput(
            external_id=external_id,
            profile_external_id=profile.external_id,
            recorded_at=timezone.now() - timedelta(days=days_ago),
            transcript="turn on the lights",
            audio=ContentFile(b"RIFF....WAVEfmt ", name="clip.wav"),
        ),
        actor="test",
    )


def _pg(command: str, *args: str) -> None:
    db = connection.settings_dict
    env = {"PGPASSWORD": db.get("PASSWORD") or "", "PATH": "/usr/bin:/bin"}
    subprocess.run(  # noqa: S603
        [
            command,
            "-h",
            db.get("HOST") or "127.0.0.1",
            "-p",
            str(db.get("PORT") or 5432),
            "-U",
            db.get("USER") or "postgres",
            *args,
        ],
        check=True,
        env=env,
        capture_output=True,
    )


def _audio_key(recording: Recording) -> str:
    return recording.artefacts.get(category="audio").storage_key


@pytest.mark.django_db(transaction=True)
def test_a_restore_from_an_older_backup_stops_writes_until_ledger_recover_puts_it_back(
    client, settings, tmp_path, monkeypatch, caplog
):
    monkeypatch.setattr(celery_app, "connection_for_write", _Broker())
    media = Path(settings.MEDIA_ROOT)
    for category in ("audio", "transcript"):
        retention_policy_create(
            jurisdiction="*", category=category, retention_days=10, applies_to="all", actor="t"
        )
    retention_policies_apply()
    withdrawing, holding, deleting, released = (ProfileFactory() for _ in range(4))
    purging = ProfileFactory(account__jurisdiction="DE")  # its clips may be heard in DE
    consent_set(profile=withdrawing, purpose="human_review", granted=True, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    heard = _ingest(withdrawing, "rec-heard")
    now = timezone.now()
    item = ReviewItem.objects.create(
        id="item-restore", recording=heard, purpose="human_review", reviewer=ReviewerFactory(),
        reviewer_location="DE", state="pending", created_at=now,
        expires_at=now + timedelta(hours=1),
    )  # fmt: skip
    held = _ingest(holding, "rec-held")
    doomed = [_ingest(deleting, f"rec-doomed-{i}") for i in range(2)]
    due = _ingest(purging, "rec-due", days_ago=11)
    consent_set(profile=purging, purpose="human_review", granted=True, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    sampled = _ingest(purging, "rec-sampled")
    releasing = legal_hold_place(profile=released, reason="r", case_reference="C-1", actor="t")
    assert ledger_checkpoint_issue() is not None
    keys = {r.external_id: _audio_key(r) for r in [*doomed, due, held]}

    # the backup: the database, and the media storage as it stood
    dump = tmp_path / "backup.dump"
    _pg("pg_dump", "-Fc", "-f", str(dump), connection.settings_dict["NAME"])
    media_backup = tmp_path / "media-backup"
    shutil.copytree(media, media_backup)

    # the service goes on, and publishes what it does
    consent_set(profile=withdrawing, purpose="human_review", granted=False, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    hold = legal_hold_place(profile=holding, reason="litigation", case_reference="C-2", actor="o")
    legal_hold_release(hold=releasing, actor="o")
    request = deletion_request_create(
        profile=deleting, recorded_from=None, recorded_to=None, actor="u"
    )
    deletion_request_run(public_id=request.public_id)
    draw = sample_draw(
        request=SampleRequest(purpose="human_review", size=10, reviewer_location="DE"),
        actor="client:t",
    )
    drawn = {i.id: ReviewItem.objects.get(pk=i.id).recording_id for i in draw.items}
    assert list(drawn.values()) == [sampled.pk]
    [drawn_id] = drawn
    review_item_audio_open(item_id=drawn_id, caller=LINK).file.close()
    drawn_item = ReviewItem.objects.get(pk=drawn_id)
    assert purge_expired().recordings_purged == 1
    checkpoint = ledger_checkpoint_issue()
    assert checkpoint is not None
    published_size = checkpoint.tree_size

    # the restore: the older backup of both
    connections.close_all()
    _pg("pg_restore", "--clean", "--if-exists", "--no-owner", "--single-transaction",
        "-d", connection.settings_dict["NAME"], str(dump))  # fmt: skip
    shutil.rmtree(media)
    shutil.copytree(media_backup, media)
    ledger_export_state_forget()
    restored_size = LedgerEntry.objects.count()
    assert restored_size < published_size

    state = ledger_export_state()
    assert (state.status, state.database_size, state.export_size) == (
        BEHIND,
        restored_size,
        published_size,
    )
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json()["checks"]["ledger"] == "ledger_behind_export"
    assert ready.json()["reasons"][0]["code"] == "ledger_behind_export"
    assert "ledger_recover" in ready.json()["reasons"][0]["message"]
    refused = client.post("/api/v1/accounts", {}, content_type="application/json")
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "ledger_behind_export"
    with pytest.raises(ApplicationError) as appended, transaction.atomic():
        ledger_append(kind="test.entry", payload={})
    assert appended.value.code == "ledger_behind_export"
    with caplog.at_level(logging.WARNING):
        retention_tasks.purge_expired_task()
    assert "retention.purge_expired skipped: ledger_behind_export" in caplog.text
    assert Recording.objects.get(external_id="rec-due").state == "active"
    assert LedgerEntry.objects.count() == restored_size

    exported_parts = export_parts(restored_size + 1, published_size)
    assert exported_parts
    assert not LedgerEntryPart.objects.filter(seq__in=list(exported_parts)).exists()
    call_command("ledger_recover")

    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json()
    assert ledger_export_state(fresh=True).status == OK
    # verbatim: the same leaves and hashes, the exported checkpoints recorded
    exported = export_leaves(1, published_size)
    stored = dict(LedgerEntry.objects.values_list("seq", "leaf"))
    assert {seq: bytes(leaf) for seq, leaf in stored.items()} == exported
    newest = LedgerCheckpoint.objects.order_by("-tree_size").first()
    assert newest.tree_size == published_size
    assert newest.note == export_read(f"checkpoints/{published_size:020d}").decode()
    assert base64.b64encode(bytes(newest.root_hash)) == base64.b64encode(
        bytes(checkpoint.root_hash)
    )
    call_command("verify_ledger")
    # the parts of the purge batch and of the draw, verbatim
    shared = LedgerEntry.objects.filter(
        seq__gt=restored_size, kind__in=["purge.batch", "sample.drawn"]
    )
    # (the deletion request's and the retention purge's batches, and the draw)
    assert sorted(shared.values_list("kind", flat=True)) == [
        "purge.batch",
        "purge.batch",
        "sample.drawn",
    ]
    assert set(exported_parts) == set(shared.values_list("seq", flat=True))
    stored_parts = LedgerEntryPart.objects.filter(seq__gt=restored_size)
    assert {
        (seq, index): bytes(part)
        for seq, index, part in stored_parts.values_list("seq", "index", "part")
    } == {
        (seq, index): part for seq, parts in exported_parts.items() for index, part in parts.items()
    }
    # the profile's evidence bundle proves the purge and the draw from the parts, offline
    bundle = profile_evidence(profile=purging)
    assert [p["recordings"] for p in bundle["purges"]] == [
        [{"recording": "rec-due", "reason": "retention_policy"}]
    ]
    assert [(r["review_item"], r["recording"]) for r in bundle["reviews"]] == [
        (item_id, "rec-sampled") for item_id in drawn
    ]
    (tmp_path / "bundle.json").write_text(json.dumps(bundle))
    verified = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "earshot_verify", str(tmp_path / "bundle.json"), "--key",
         signing_key().verifier_key],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert verified.returncode == 0, verified.stderr
    # the effects
    state_row = ConsentState.objects.get(profile=withdrawing, purpose="human_review")
    assert state_row.granted is False
    item.refresh_from_db()
    assert item.state == "revoked"
    assert LegalHold.objects.get(pk=hold.pk).released_at is None
    assert LegalHold.objects.get(pk=hold.pk).case_reference == "C-2"
    assert LegalHold.objects.get(pk=releasing.pk).released_at is not None
    done = DeletionRequest.objects.get(public_id=request.public_id)
    assert done.status == "done"
    assert done.receipt == LedgerEntry.objects.get(kind="deletion_request.done").hash
    for recording in [*doomed, due]:
        recording.refresh_from_db()
        assert recording.state == "purged", recording.external_id
        assert (media_backup / keys[recording.external_id]).exists()
        assert not (media / keys[recording.external_id]).exists()
    assert Recording.objects.get(pk=held.pk).state == "active"
    assert (media / keys["rec-held"]).exists()
    # the draw's item, from its part, delivered as the clip access recorded
    recovered_item = ReviewItem.objects.get(pk=drawn_id)
    assert recovered_item.recording_id == sampled.pk
    assert (recovered_item.state, recovered_item.purpose, recovered_item.reviewer_location) == (
        "delivered",
        "human_review",
        "DE",
    )
    assert recovered_item.created_at == LedgerEntry.objects.get(kind="sample.drawn").created_at
    assert (
        recovered_item.delivered_at
        == LedgerEntry.objects.get(
            kind="review_item.accessed", subject=f"review_item:{drawn_id}"
        ).created_at
    )
    assert recovered_item.expires_at >= drawn_item.expires_at
    # so the clip it handed out is not handed out again
    again = sample_draw(
        request=SampleRequest(purpose="human_review", size=10, reviewer_location="DE"),
        actor="client:t",
    )
    assert again.items == []
    # and the service goes on, consistent with every signed checkpoint
    consent_set(profile=holding, purpose="human_review", granted=True, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    # (after the empty draw's entry and this consent's)
    assert ledger_checkpoint_issue().tree_size == published_size + 2
    call_command("verify_ledger")


@pytest.mark.django_db
def test_a_fresh_database_beside_an_empty_export_is_not_behind():
    assert ledger_export_state(fresh=True).status == OK
    append(3)
    assert ledger_export_state(fresh=True).status == OK
    call_command("ledger_recover", "--check")
    call_command("ledger_recover")
    assert LedgerEntry.objects.count() == 3


@pytest.mark.django_db
def test_a_database_up_to_date_with_its_export_is_not_behind():
    append(3)
    ledger_checkpoint_issue()
    append(2)

    state = ledger_export_state(fresh=True)

    assert (state.status, state.database_size, state.export_size) == (OK, 5, 3)


@pytest.mark.django_db
def test_an_export_of_another_history_is_not_taken_for_behind(settings):
    """A new database beside an export of a longer history signed with the same key, or
    one whose entries differ from it: never recovered from, and appending goes on (the
    evidence endpoints say `ledger_inconsistent`)."""
    from compliance.ledger.checkpoints import _export_file, checkpoint_text

    key = signing_key()
    note = key.sign_note(checkpoint_text(origin=settings.LEDGER_ORIGIN, tree_size=9,
                                         root=b"\x01" * 32))  # fmt: skip
    _export_file(Path("checkpoints") / f"{9:020d}", note.encode())

    state = ledger_export_state(fresh=True)
    assert (state.status, state.code) == (OTHER_HISTORY, "ledger_inconsistent")
    append(2)  # not refused
    lines = "".join(f"{seq} {base64.b64encode(b'other').decode()}\n" for seq in range(1, 10))
    _export_file(Path("entries") / f"{1:020d}-{9:020d}", lines.encode())

    assert ledger_export_state(fresh=True).status == OTHER_HISTORY
    with pytest.raises(CommandError, match="ledger_inconsistent"):
        call_command("ledger_recover")
    assert LedgerEntry.objects.count() == 2


@pytest.mark.django_db
def test_a_database_shortened_below_its_own_checkpoint_is_not_taken_for_behind():
    append(4)
    ledger_checkpoint_issue()
    delete_newest(2)

    assert ledger_export_state(fresh=True).status == OTHER_HISTORY


def _behind() -> None:
    """What a restore of a backup taken at 3 entries leaves beside an export of 5."""
    append(3)
    ledger_checkpoint_issue()
    append(2)
    newer = ledger_checkpoint_issue()
    delete_newest(2)
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()
    ledger_export_state_forget()


@pytest.mark.django_db
def test_the_beat_tasks_skip_while_the_database_is_behind(caplog):
    from compliance.ledger import tasks as ledger_tasks
    from compliance.ledger.models import VerificationRun
    from compliance.sampling import tasks as sampling_tasks

    _behind()
    with caplog.at_level(logging.WARNING):
        retention_tasks.purge_expired_task()
        retention_tasks.retention_sweep_task()
        retention_tasks.storage_sweep_task()
        retention_tasks.deletion_request_run_task("del_x")
        sampling_tasks.review_items_expire_task()
        ledger_tasks.ledger_checkpoint_task()
        ledger_tasks.ledger_verification_sweep_task()

    for task in (
        "retention.purge_expired",
        "retention.sweep",
        "retention.storage_sweep",
        "retention.run_deletion_request",
        "sampling.expire_items",
        "ledger.checkpoint",
        "ledger.verification_sweep",
    ):
        assert f"{task} skipped: ledger_behind_export" in caplog.text
    assert LedgerEntry.objects.count() == 3
    assert LedgerCheckpoint.objects.count() == 1
    assert not VerificationRun.objects.exists()


@pytest.mark.django_db
def test_a_writing_page_request_is_a_503_too_while_reads_go_on(client):
    _behind()

    page = client.post("/privacy/", {})
    read = client.get("/api/v1/ledger/checkpoint")

    assert page.status_code == 503
    assert page["Retry-After"]
    assert "ledger_recover" in page.content.decode()
    assert read.status_code == 200


@pytest.mark.django_db
def test_eligibility_decisions_are_refused_while_behind_since_withdrawals_are_missing(client):
    """Until the recovery re-applies them, withdrawals made after the backup are not in
    the consent states a decision would read."""
    _behind()

    response = client.get("/api/v1/eligibility/rec-1")

    assert response.status_code == 503
    assert response.json()["error"]["code"] == "ledger_behind_export"


def _behind_with_parts() -> None:
    """A restore of a backup taken at 2 entries beside an export of 4, the newest two
    purge batches with parts."""
    append(2)
    ledger_checkpoint_issue()
    append_with_parts(3)
    append_with_parts(2)
    newer = ledger_checkpoint_issue()
    delete_newest(2)
    delete_parts_after(2)
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()
    ledger_export_state_forget()


def _parts_file(settings) -> Path:
    [exported] = (Path(settings.LEDGER_EXPORT) / "parts").iterdir()
    return exported


def _drop_a_part(settings) -> None:
    path = _parts_file(settings)
    path.write_text("".join(path.read_text().splitlines(keepends=True)[1:]))


def _edit_a_part(settings) -> None:
    path = _parts_file(settings)
    lines = path.read_text().splitlines(keepends=True)
    seq, index, encoded = lines[0].split()
    part = json.loads(base64.b64decode(encoded))
    part["recordings"] = []
    edited = base64.b64encode(json.dumps(part).encode()).decode()
    path.write_text("".join([f"{seq} {index} {edited}\n", *lines[1:]]))


def _remove_the_parts(settings) -> None:
    _parts_file(settings).unlink()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_drop_a_part, "missing from LEDGER_EXPORT or incomplete"),
        (_remove_the_parts, "missing from LEDGER_EXPORT or incomplete"),
        (_edit_a_part, "do not match its parts_root"),
    ],
    ids=["one part missing", "parts file missing", "part edited"],
)
def test_a_recovery_whose_exported_parts_do_not_match_their_entry_is_refused_and_changes_nothing(
    settings, tamper, named
):
    _behind_with_parts()
    tamper(settings)

    with pytest.raises(CommandError, match=named):
        call_command("ledger_recover")

    assert LedgerEntry.objects.count() == 2
    assert not LedgerEntryPart.objects.exists()
    assert LedgerCheckpoint.objects.count() == 1
    assert ledger_export_state(fresh=True).status == BEHIND


@pytest.mark.django_db
def test_a_recovery_is_refused_while_the_database_holds_parts_of_entries_it_lacks():
    append(2)
    ledger_checkpoint_issue()
    append_with_parts(3)
    newer = ledger_checkpoint_issue()
    delete_newest(1)  # the entry goes, its parts stay
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()
    ledger_export_state_forget()

    with pytest.raises(CommandError, match="holds parts of entries from #3 on"):
        call_command("ledger_recover")

    assert LedgerEntry.objects.count() == 2
    assert LedgerEntryPart.objects.count() == 3


@pytest.mark.django_db
def test_a_recovery_re_imports_each_entrys_parts_as_exported(settings):
    exported = {}
    _behind_with_parts()
    for line in _parts_file(settings).read_text().splitlines():
        seq, index, encoded = line.split()
        exported[(int(seq), int(index))] = base64.b64decode(encoded)

    call_command("ledger_recover")

    stored = LedgerEntryPart.objects.values_list("seq", "index", "part")
    assert {(seq, index): bytes(part) for seq, index, part in stored} == exported
    assert sorted({seq for seq, _ in exported}) == [3, 4]
    call_command("verify_ledger")


@pytest.mark.django_db
def test_a_recovery_re_creates_a_draws_items_from_its_parts_and_closes_those_the_sweep_expired(
    settings,
):
    from compliance.sampling.services import review_items_expire
    from tests.sampling.conftest import reviewable

    settings.REVIEW_LINK_SECONDS = 0  # the link's items expire as they are drawn
    recording = reviewable(external_id="rec-drawn")
    append(1)
    backup = ledger_checkpoint_issue().tree_size
    [drawn] = sample_draw(
        request=SampleRequest(purpose="human_review", size=5, reviewer_location="DE"),
        actor="client:t",
    ).items
    assert review_items_expire() == 1
    newer = ledger_checkpoint_issue()
    # what a restore of the backup taken at `backup` entries leaves
    delete_newest(newer.tree_size - backup)
    delete_parts_after(backup)
    ReviewItem.objects.all().delete()
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()
    ledger_export_state_forget()

    call_command("ledger_recover")

    item = ReviewItem.objects.get(pk=drawn.id)
    draw_entry = LedgerEntry.objects.get(kind="sample.drawn")
    expiry_entry = LedgerEntry.objects.get(kind="review_items.expired")
    assert (item.recording_id, item.purpose, item.reviewer_location, item.reviewer) == (
        recording.pk,
        "human_review",
        "DE",
        None,
    )
    assert (item.created_at, item.expires_at) == (draw_entry.created_at, draw_entry.created_at)
    assert (item.state, item.closed_at, item.close_reason) == (
        "expired",
        expiry_entry.created_at,
        "expired",
    )
