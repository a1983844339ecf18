"""The purge: what is due goes, what is held stays, and a crash at any step loses nothing."""

import os
import threading
import time
from datetime import timedelta

import pytest
import time_machine
from auditlog.models import LogEntry
from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.core.files.storage import default_storage
from django.db import connection, connections
from django.db.models import F
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.actions.profiles import profile_retention_set
from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.recordings.models import Artefact, Recording
from compliance.retention import purge, services, storage_sweep, tombstones
from compliance.retention.services import (
    legal_hold_place,
    legal_hold_release,
    retention_policies_apply,
    retention_policy_create,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.faults.hooks import Killed, purge_killed_at
from tests.retention.conftest import stored_files

pytestmark = pytest.mark.django_db


def _policy(
    days: int, *, jurisdiction: str = "*", category: str = "audio", applies_to: str = "all"
):
    policy = retention_policy_create(
        jurisdiction=jurisdiction,
        category=category,
        retention_days=days,
        applies_to=applies_to,
        actor="test",
    )
    retention_policies_apply()
    return policy


def test_an_artefact_goes_exactly_at_its_expiry_and_not_a_moment_before(ingest):
    _policy(30)
    recording = ingest(days_ago=0)
    audio = recording.artefacts.get(category="audio")
    assert audio.expires_at == recording.recorded_at + timedelta(days=30)

    with time_machine.travel(audio.expires_at - timedelta(microseconds=1), tick=False):
        assert purge.purge_expired().purged == 0
    audio.refresh_from_db()
    assert audio.state == "active"

    with time_machine.travel(audio.expires_at, tick=False):
        assert purge.purge_expired().purged == 1
    audio.refresh_from_db()
    assert (audio.state, audio.storage_key, audio.purge_reason) == (
        "purged",
        "",
        "retention_policy",
    )


@postgres_only()
def test_a_batch_sends_its_ids_as_one_array_not_one_parameter_each(ingest):
    """Thousands of `IN (%s, ...)` parameters cost a purge batch more in Python and in
    PostgreSQL's parser than the statements themselves (bench/purge.py)."""
    _policy(1)
    for _ in range(30):
        ingest(days_ago=10)
    widest: list[int] = []

    def count_parameters(execute, sql, params, many, context):
        widest.append(len(params or ()))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count_parameters):
        assert purge.purge_expired().purged == 30
    assert widest and max(widest) < 30


@postgres_only()
def test_a_claim_reads_its_own_batch_of_a_backlog_due_at_one_instant(ingest):
    """A retention-choice change or a shortened policy makes many rows due at the same
    instant. The claim's first read takes them in the periodic purge's order
    (expires_at, id) straight from `artefact_due` and stops at the batch's size: no
    sort. On expires_at alone, every batch read, joined and sorted the whole backlog
    (docs/capacity.md, "The purge at 10x"). The plan is asked for as on a large table
    (no sequential or bitmap scans, nested loops only): this table is tiny."""
    import inspect

    _due_audio(ingest, 6)
    now = timezone.now()
    Artefact.objects.filter(category="audio").update(expires_at=now - timedelta(days=1))
    order = inspect.signature(purge.purge_batch).parameters["order"].default
    with CaptureQueriesContext(connection) as queries:
        claimed, _ = purge._claim(
            purge.due_artefacts(now), now=now, reason=None, limit=2, order=order
        )
    assert len(claimed) == 2
    assert claimed == sorted(claimed, key=lambda c: c.id)
    assert {c.id for c in claimed} == set(
        Artefact.objects.filter(category="audio").order_by("id").values_list("id", flat=True)[:2]
    )
    peek = next(q["sql"] for q in queries if q["sql"].startswith("SELECT"))
    assert "LIMIT 2" in peek
    with connection.cursor() as cursor:
        for setting in ("seqscan", "bitmapscan", "hashjoin", "mergejoin"):
            cursor.execute(f"SET LOCAL enable_{setting} = off")
        cursor.execute(f"EXPLAIN {peek}")
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "artefact_due" in plan, plan
    assert "Sort" not in plan, plan


def test_a_purge_unlinks_the_file_and_leaves_a_tombstone_without_content(ingest):
    _policy(10)
    _policy(10, category="transcript")
    recording = ingest(days_ago=11)
    key = recording.artefacts.get(category="audio").storage_key
    assert key in stored_files(settings.MEDIA_ROOT)

    run = purge.purge_expired()

    assert (run.purged, run.recordings_purged) == (2, 1)
    assert key not in stored_files(settings.MEDIA_ROOT)
    recording.refresh_from_db()
    assert recording.state == "purged"
    assert recording.purge_reason == "retention_policy"
    assert recording.purge_policy.startswith("policy:")
    assert recording.purged_at is not None
    assert all(a.text == "" and a.storage_key == "" for a in recording.artefacts.all())
    batch = LedgerEntry.objects.get(kind="purge.batch")
    assert batch.payload["artefacts"] == 2
    assert batch.payload["recordings"] == 1
    assert ledger_verify().ok


def test_an_artefact_the_policy_does_not_cover_stays(ingest):
    _policy(10)  # audio only
    recording = ingest(days_ago=11)
    purge.purge_expired()
    recording.refresh_from_db()
    assert recording.state == "active"
    assert recording.artefacts.get(category="transcript").state == "active"
    assert recording.artefacts.get(category="audio").state == "purged"


def test_without_policy_or_choice_nothing_is_deleted(ingest):
    recording = ingest(days_ago=5000)
    assert purge.purge_expired().purged == 0
    assert recording.artefacts.filter(state="active").count() == 2


def test_a_users_shorter_choice_wins_over_the_policy(ingest):
    _policy(540)
    profile = ProfileFactory()
    recording = ingest(profile, days_ago=100)
    assert purge.purge_expired().purged == 0
    profile_retention_set(profile=profile, choice="3_months", actor="test")
    assert purge.purge_expired().purged == 2  # 100 days > 90: audio and transcript
    assert {a.purge_reason for a in recording.artefacts.all()} == {"user_choice"}


def test_a_shorter_policy_wins_over_the_users_longer_choice(ingest):
    _policy(30)
    profile = ProfileFactory(retention_choice="18_months")
    ingest(profile, days_ago=31)
    assert purge.purge_expired().purged == 1


def test_a_childrens_policy_applies_to_children_only(ingest):
    _policy(365)
    _policy(7, applies_to="children")
    child, adult = ProfileFactory(is_child=True), ProfileFactory()
    childs, adults = ingest(child, days_ago=8), ingest(adult, days_ago=8)
    purge.purge_expired()
    assert childs.artefacts.get(category="audio").state == "purged"
    assert adults.artefacts.get(category="audio").state == "active"


def test_dont_save_recordings_go_at_the_next_purge(ingest):
    profile = ProfileFactory(retention_choice="dont_save")
    recording = ingest(profile, days_ago=0)
    purge.purge_expired()
    recording.refresh_from_db()
    assert recording.state == "purged"
    assert recording.purge_reason == "dont_save"


def test_a_hold_beats_retention_and_the_purge_says_what_it_skipped(ingest):
    _policy(10)
    profile = ProfileFactory()
    held = ingest(profile, days_ago=20)
    hold = legal_hold_place(
        profile=profile, reason="litigation", case_reference="C-1", actor="test"
    )

    run = purge.purge_expired()

    assert (run.purged, run.held) == (0, 1)
    audio = held.artefacts.get(category="audio")
    assert audio.state == "active" and audio.purge_blocked
    skipped = LedgerEntry.objects.get(kind="purge.skipped_held")
    assert skipped.payload["holds"] == {str(hold.pk): 1}
    assert purge.purge_expired().held == 0  # not looked at again while blocked

    legal_hold_release(hold=hold, actor="test")
    assert purge.purge_expired().purged == 1


def test_releasing_a_hold_unblocks_what_it_kept_in_bounded_batches(ingest, monkeypatch):
    # given six artefacts kept by one hold, and one kept by another hold
    monkeypatch.setattr(services, "RELEASE_BATCH", 2)
    _policy(10)
    _policy(10, category="transcript")
    profile, other = ProfileFactory(), ProfileFactory()
    held = [ingest(profile, days_ago=20) for _ in range(3)]
    still_held = ingest(other, days_ago=20)
    hold = legal_hold_place(profile=profile, reason="litigation", case_reference="C-1", actor="t")
    legal_hold_place(profile=other, reason="audit", case_reference="C-2", actor="t")
    assert purge.purge_expired().held == 8
    released = Artefact.objects.filter(recording__in=held)

    # when the first hold is released
    with CaptureQueriesContext(connection) as queries:
        legal_hold_release(hold=hold, actor="user:7")

    # then each of its artefacts is unblocked, in batches of at most RELEASE_BATCH ids
    # sent as one array parameter on PostgreSQL, with one history entry each
    assert not released.filter(purge_blocked=True).exists()
    assert all(a.purge_blocked for a in still_held.artefacts.all())
    table = Artefact._meta.db_table
    updates = [q["sql"] for q in queries if q["sql"].startswith(f'UPDATE "{table}"')]
    assert len(updates) == 3
    if connection.vendor == "postgresql":
        assert all("= ANY(" in sql for sql in updates)
    entries = LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Artefact), changes__has_key="purge_blocked"
    )
    assert sorted(int(e.object_pk) for e in entries) == sorted(a.pk for a in released)
    assert LedgerEntry.objects.filter(
        kind="legal_hold.released", subject=f"legal_hold:{hold.pk}"
    ).exists()
    assert purge.purge_expired().purged == 6


def test_an_account_hold_with_a_range_covers_only_that_range(ingest):
    _policy(10)
    profile = ProfileFactory()
    old, recent = ingest(profile, days_ago=40), ingest(profile, days_ago=15)
    legal_hold_place(
        account=profile.account,
        recorded_from=timezone.now() - timedelta(days=20),
        reason="audit",
        case_reference="C-2",
        actor="test",
    )
    purge.purge_expired()
    assert old.artefacts.get(category="audio").state == "purged"
    assert recent.artefacts.get(category="audio").state == "active"


def test_a_new_policy_reschedules_existing_artefacts(ingest):
    recording = ingest(days_ago=50)
    assert recording.artefacts.get(category="audio").expires_at is None
    _policy(40)
    assert recording.artefacts.get(
        category="audio"
    ).expires_at == recording.recorded_at + timedelta(days=40)
    assert purge.purge_expired().purged == 1


def test_a_future_policy_applies_only_from_its_effective_time(ingest):
    recording = ingest(days_ago=50)
    starts = timezone.now() + timedelta(days=1)
    retention_policy_create(
        jurisdiction="*", category="audio", retention_days=10, effective_from=starts, actor="test"
    )
    retention_policies_apply()
    assert recording.artefacts.get(category="audio").expires_at is None
    with time_machine.travel(starts + timedelta(seconds=1), tick=False):
        retention_policies_apply()
        assert purge.purge_expired().purged == 1


def test_a_policy_run_reschedules_with_the_table_of_a_time_after_its_bound(ingest, monkeypatch):
    """A run takes its time after its bound (`artefacts_scheduled_so_far`): an artefact
    written just before the bound, under a version that came into force a moment
    earlier, keeps that version. With the time taken first, the run would reschedule it
    with the older table of its own moment."""
    older = retention_policy_create(
        jurisdiction="*", category="audio", retention_days=30, actor="test"
    )
    starts = timezone.now() + timedelta(minutes=1)
    newer = retention_policy_create(
        jurisdiction="*", category="audio", retention_days=40, effective_from=starts, actor="test"
    )
    bound = services.artefacts_scheduled_so_far
    arrived: list[Recording] = []
    with time_machine.travel(timezone.now(), tick=True) as clock:

        def a_recording_arrives_as_the_bound_is_read() -> int | None:
            clock.shift(timedelta(minutes=2))
            arrived.append(ingest(external_id="arrived"))
            return bound()

        monkeypatch.setattr(
            services, "artefacts_scheduled_so_far", a_recording_arrives_as_the_bound_is_read
        )
        retention_policies_apply()

    audio = arrived[0].artefacts.get(category="audio")
    assert audio.expiry_basis == f"policy:{newer.pk}", f"rescheduled under {older.pk}"
    assert audio.expires_at == arrived[0].recorded_at + timedelta(days=40)
    newer.refresh_from_db()
    assert newer.applied_at is not None


@pytest.mark.parametrize("step", ["claimed", "unlinked"])
def test_a_purge_killed_between_steps_is_finished_by_the_next_run(ingest, step):
    _policy(10)
    _policy(10, category="transcript")
    recordings = [ingest(days_ago=11) for _ in range(3)]
    keys = {r.artefacts.get(category="audio").storage_key for r in recordings}

    with purge_killed_at(step), pytest.raises(Killed):
        purge.purge_expired()

    assert Artefact.objects.filter(state="purging").count() == 6
    assert purge.purge_expired().purged == 0  # a live claim is not taken over early
    with time_machine.travel(
        timezone.now() + purge.purge_lease() + timedelta(seconds=1), tick=False
    ):
        run = purge.purge_expired()
    assert run.taken_over == 6
    assert Artefact.objects.filter(state="purged").count() == 6
    assert Recording.objects.filter(state="purged").count() == 3
    assert not keys & stored_files(settings.MEDIA_ROOT)
    assert LedgerEntry.objects.filter(kind="purge.batch").count() == 1
    assert ledger_verify().ok


def _due_audio(ingest, count: int) -> list[str]:
    """`count` recordings whose audio is due; their storage keys."""
    _policy(10)
    return [ingest(days_ago=11).artefacts.get(category="audio").storage_key for _ in range(count)]


def _due_audio_in_chunk_order(ingest, count: int) -> list[str]:
    """Like `_due_audio`, in artefact id order: the order the purge's chunks go in."""
    _due_audio(ingest, count)
    return list(
        Artefact.objects.filter(category="audio")
        .order_by("id")
        .values_list("storage_key", flat=True)
    )


@pytest.mark.parametrize("storage", ["django", "strict"])
def test_a_file_already_gone_counts_as_deleted(ingest, monkeypatch, storage):
    keys = _due_audio(ingest, 6)
    for key in keys[:2]:
        default_storage.delete(key)
    if storage == "strict":  # a storage that says so when the file is missing
        real_delete = default_storage.delete

        def delete(key: str) -> None:
            if not default_storage.exists(key):
                raise FileNotFoundError(key)
            real_delete(key)

        monkeypatch.setattr(default_storage, "delete", delete)

    run = purge.purge_expired()

    assert run.purged == 6
    assert Artefact.objects.filter(state="purged").count() == 6
    assert not set(keys) & stored_files(settings.MEDIA_ROOT)


def test_a_failing_delete_fails_the_batch_and_the_sweep_finishes_it(ingest, monkeypatch):
    keys = _due_audio(ingest, 6)
    real_delete = default_storage.delete

    def delete(key: str) -> None:
        if key == keys[3]:
            raise PermissionError(key)
        real_delete(key)

    monkeypatch.setattr(default_storage, "delete", delete)

    with pytest.raises(PermissionError):
        purge.purge_expired()

    assert Artefact.objects.filter(category="audio", state="purging").count() == 6
    assert keys[3] in stored_files(settings.MEDIA_ROOT)
    assert not LedgerEntry.objects.filter(kind="purge.batch").exists()
    monkeypatch.undo()
    with time_machine.travel(
        timezone.now() + purge.purge_lease() + timedelta(seconds=1), tick=False
    ):
        run = purge.purge_expired()
    assert (run.taken_over, run.purged) == (6, 6)
    assert Artefact.objects.filter(category="audio", state="purged").count() == 6
    assert not set(keys) & stored_files(settings.MEDIA_ROOT)


def test_files_are_deleted_by_several_threads_at_once(ingest, monkeypatch):
    keys = _due_audio(ingest, purge.UNLINK_THREADS)
    together = threading.Barrier(purge.UNLINK_THREADS, timeout=5)
    real_delete = default_storage.delete

    def delete(key: str) -> None:
        together.wait()  # passes only once every thread is deleting at the same time
        real_delete(key)

    monkeypatch.setattr(default_storage, "delete", delete)

    assert purge.purge_expired().purged == purge.UNLINK_THREADS
    assert not set(keys) & stored_files(settings.MEDIA_ROOT)


@postgres_only()
def test_a_chunk_is_tombstoned_while_the_next_chunks_files_are_still_being_deleted(
    ingest, monkeypatch
):
    keys = _due_audio_in_chunk_order(ingest, 4)
    monkeypatch.setattr(purge, "UNLINK_CHUNK", 2)
    monkeypatch.setattr(purge, "UNLINK_THREADS", 1)
    first_chunk_written = threading.Event()
    real_tombstone, real_delete = purge._tombstone_artefacts, default_storage.delete

    def tombstone(chunk, *, now):
        written = real_tombstone(chunk, now=now)
        if chunk and chunk[0].storage_key == keys[0]:
            first_chunk_written.set()
        return written

    def delete(key: str) -> None:
        if key == keys[2]:  # the second chunk's first file waits for the first chunk's rows
            assert first_chunk_written.wait(timeout=10), "the chunks were not overlapped"
        real_delete(key)

    monkeypatch.setattr(purge, "_tombstone_artefacts", tombstone)
    monkeypatch.setattr(default_storage, "delete", delete)

    assert purge.purge_expired().purged == 4
    assert not set(keys) & stored_files(settings.MEDIA_ROOT)
    assert Artefact.objects.filter(category="audio", state="purged").count() == 4


def test_a_delete_failing_in_a_later_chunk_leaves_the_earlier_chunks_purging(ingest, monkeypatch):
    keys = _due_audio_in_chunk_order(ingest, 6)
    monkeypatch.setattr(purge, "UNLINK_CHUNK", 2)
    real_delete = default_storage.delete

    def delete(key: str) -> None:
        if key == keys[5]:
            raise PermissionError(key)
        real_delete(key)

    monkeypatch.setattr(default_storage, "delete", delete)

    with pytest.raises(PermissionError):
        purge.purge_expired()

    # the first chunks' files are gone, but their rows commit with the whole batch only
    assert not set(keys[:4]) & stored_files(settings.MEDIA_ROOT)
    assert Artefact.objects.filter(category="audio", state="purging").count() == 6
    assert not LogEntry.objects.filter(
        content_type__in=[
            ContentType.objects.get_for_model(Artefact),
            ContentType.objects.get_for_model(Recording),
        ]
    ).exists()
    assert not LedgerEntry.objects.filter(kind="purge.batch").exists()


@postgres_only()
def test_a_database_error_mid_batch_stops_the_deletes_not_yet_started(ingest, monkeypatch):
    keys = _due_audio_in_chunk_order(ingest, 4)
    monkeypatch.setattr(purge, "UNLINK_CHUNK", 1)
    monkeypatch.setattr(purge, "UNLINK_THREADS", 1)
    real_delete = default_storage.delete

    def delete(key: str) -> None:
        if key == keys[1]:  # still deleting when the first chunk's write fails
            time.sleep(1)
        real_delete(key)

    def tombstone(chunk, *, now):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(default_storage, "delete", delete)
    monkeypatch.setattr(purge, "_tombstone_artefacts", tombstone)

    with pytest.raises(RuntimeError):
        purge.purge_expired()
    time.sleep(1.5)  # time enough for deletes that went on in the background

    left = set(keys) & stored_files(settings.MEDIA_ROOT)
    assert left == set(keys[2:]), "the queued deletes went on after the batch had failed"
    assert Artefact.objects.filter(category="audio", state="purging").count() == 4
    assert not [t for t in threading.enumerate() if t.name.startswith("ThreadPoolExecutor")]


@pytest.mark.django_db(transaction=True)
def test_on_sqlite_every_file_is_deleted_before_the_finish_locks_the_database(ingest, monkeypatch):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL locks rows, not the database: there the two overlap")
    keys = _due_audio(ingest, 3)
    main = connections["default"]  # this thread's, the purge's (each thread has its own)
    in_transaction: list[bool] = []
    real_delete = default_storage.delete

    def delete(key: str) -> None:
        in_transaction.append(main.in_atomic_block)
        real_delete(key)

    monkeypatch.setattr(default_storage, "delete", delete)

    assert purge.purge_expired().purged == 3
    assert in_transaction == [False, False, False]
    assert not set(keys) & stored_files(settings.MEDIA_ROOT)


def test_history_names_only_the_artefacts_a_partly_taken_over_finish_updated(ingest):
    from tests.security.test_audit import history

    _due_audio(ingest, 4)
    now = timezone.now()
    claimed, result = purge._claim(
        purge.due_artefacts(now), now=now, reason=None, limit=10, order=("id",)
    )
    taken = sorted(c.id for c in claimed)[:2]
    # a takeover re-claimed two of them under a new attempt number meanwhile
    Artefact.objects.filter(pk__in=taken).update(purge_attempt=F("purge_attempt") + 1)

    purge._finish([claimed], now=now, result=result)

    # the history (one entry per recording, docs/runtime.md) names only the audio this
    # finish purged: the recordings whose audio was taken over have none yet
    assert result.purged == 2
    for artefact in Artefact.objects.filter(category="audio"):
        entries = history(artefact.recording)
        assert not history(artefact)
        if artefact.pk in taken:
            assert artefact.state == "purging" and not entries
        else:
            [entry] = entries
            assert artefact.state == "purged"
            assert entry.changes_dict["audio"] == ["purging", "purged"]


def test_a_stale_worker_cannot_finish_a_claim_that_was_taken_over(ingest):
    _policy(10)
    ingest(days_ago=11)
    now = timezone.now()
    claimed, result = purge._claim(
        purge.due_artefacts(now), now=now, reason=None, limit=10, order=("id",)
    )
    with time_machine.travel(now + purge.purge_lease() + timedelta(seconds=1), tick=False):
        purge.purge_expired()  # the takeover finishes it under attempt 2
    entries = LedgerEntry.objects.filter(kind="purge.batch").count()
    purge._finish([claimed], now=now, result=result)  # the stale worker wakes up
    assert LedgerEntry.objects.filter(kind="purge.batch").count() == entries
    assert result.purged == 0


def test_dry_run_counts_without_changing_anything(ingest, capsys):
    from django.core.management import call_command

    _policy(10)
    profile = ProfileFactory()
    ingest(days_ago=11)
    ingest(profile, days_ago=11)
    legal_hold_place(profile=profile, reason="r", case_reference="c", actor="test")
    call_command("purge_expired", "--dry-run")
    assert "due: 2  would purge: 1  held: 1" in capsys.readouterr().out
    assert Artefact.objects.filter(state="active").count() == 4
    call_command("purge_expired")
    assert Artefact.objects.filter(state="purged").count() == 1


def test_the_storage_sweep_settles_orphan_files_and_rows_without_files(ingest):
    from django.core.files.base import ContentFile
    from django.core.files.storage import default_storage

    kept = ingest()
    lost = ingest()
    lost_key = lost.artefacts.get(category="audio").storage_key
    default_storage.delete(lost_key)  # a row whose file is gone
    orphan = default_storage.save(
        "audio/2026/01/orphan.wav", ContentFile(b"x")
    )  # a file without a row
    young_orphan = default_storage.save("audio/2026/01/in-flight.wav", ContentFile(b"x"))

    first = storage_sweep.storage_sweep()
    assert (first.orphan_files_deleted, first.rows_without_file) == (
        0,
        1,
    )  # files within grace stay
    old = timezone.now().timestamp() - 7200
    os.utime(default_storage.path(orphan), (old, old))
    second = storage_sweep.storage_sweep()

    assert (second.orphan_files_deleted, second.rows_without_file) == (1, 0)
    files = stored_files(settings.MEDIA_ROOT)
    assert orphan not in files
    assert young_orphan in files
    assert kept.artefacts.get(category="audio").storage_key in files
    audio = lost.artefacts.get(category="audio")
    assert (audio.state, audio.purge_reason) == ("purged", "file_missing")
    assert LedgerEntry.objects.filter(kind="storage.swept").count() == 2


def test_a_stale_worker_waking_between_a_takeovers_claim_and_finish_writes_nothing(
    ingest, monkeypatch
):
    """The takeover re-claims under a new attempt number, so the dead worker's finish,
    should it wake before the takeover's own finish, updates nothing."""
    _policy(10)
    recordings = [ingest(days_ago=11) for _ in range(3)]
    now = timezone.now()
    stale, stale_result = purge._claim(
        purge.due_artefacts(now), now=now, reason=None, limit=10, order=("id",)
    )
    real_finish = purge._finish
    woke: list[bool] = []

    def the_stale_worker_wakes_first(unlinked, **kwargs) -> None:
        if not woke:
            woke.append(True)
            real_finish([stale], now=now, result=stale_result)
        real_finish(unlinked, **kwargs)

    monkeypatch.setattr(purge, "_finish", the_stale_worker_wakes_first)
    with time_machine.travel(now + purge.purge_lease() + timedelta(seconds=1), tick=False):
        run = purge.purge_expired()

    assert woke
    assert stale_result.purged == 0
    assert (run.taken_over, run.purged) == (3, 3)
    audio = Artefact.objects.filter(category="audio")
    assert set(audio.values_list("state", "purge_attempt")) == {("purged", 2)}
    assert LedgerEntry.objects.filter(kind="purge.batch").count() == 1
    assert audio.filter(recording__in=recordings).count() == 3


def test_a_purged_recordings_open_review_items_are_revoked_with_it(ingest):
    from compliance.sampling.models import ReviewItem
    from tests.factories import ReviewerFactory

    _policy(10)
    _policy(10, category="transcript")
    recording = ingest(days_ago=11)
    now = timezone.now()
    item = ReviewItem.objects.create(
        id="item-purged",
        recording=recording,
        purpose="human_review",
        reviewer=ReviewerFactory(),
        reviewer_location="DE",
        state="pending",
        created_at=now,
        expires_at=now + timedelta(hours=1),
    )

    assert purge.purge_expired().recordings_purged == 1

    item.refresh_from_db()
    assert (item.state, item.close_reason) == ("revoked", "purged")
    assert LedgerEntry.objects.filter(kind="review_items.revoked").count() == 1


def test_a_recording_already_a_tombstone_keeps_its_purge_time_and_reason(ingest):
    recording = ingest(audio=False)
    then = timezone.now() - timedelta(days=1)
    Recording.objects.filter(pk=recording.pk).update(
        state="purged", purged_at=then, purge_reason="retention_policy"
    )

    tombstones.recordings_tombstone(
        [recording.pk], now=timezone.now(), reason="deletion_request", basis="", actor="t"
    )

    recording.refresh_from_db()
    assert (recording.purged_at, recording.purge_reason) == (then, "retention_policy")


def test_the_storage_sweep_never_deletes_a_file_an_artefact_names(ingest):
    key = ingest().artefacts.get(category="audio").storage_key

    result = storage_sweep.storage_sweep(now=timezone.now() + timedelta(hours=2))

    assert key in stored_files(settings.MEDIA_ROOT)
    assert (result.files_checked, result.orphan_files_deleted) == (1, 0)


def test_nothing_in_the_service_listens_to_the_purges_steps():
    """The crash tests' fault hook is installed by their workers only (tests/faults):
    the service carries no switch that could stop a purge."""
    from compliance.retention.purge import purge_step

    assert "tests.faults" not in settings.INSTALLED_APPS
    assert not purge_step.has_listeners()
