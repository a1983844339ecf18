"""Races on PostgreSQL: two purges at once, a hold placed while a purge runs, and a
policy applied while recordings arrive."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import connection, connections, transaction
from django.utils import timezone

from compliance.actions.profiles import profile_retention_set
from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.recordings import services as recording_services
from compliance.recordings.models import Artefact, Recording
from compliance.retention import deletion_requests, purge
from compliance.retention import services as retention_services
from compliance.retention.selectors import POLICY_LOCK_KEY
from compliance.retention.services import (
    deletion_request_create,
    legal_hold_place,
    retention_policies_apply,
    retention_policy_create,
    retention_policy_retire,
)
from tests.conftest import advisory_waiter, postgres_only
from tests.factories import ProfileFactory

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _in_thread(target, *args):
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(*args)
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, errors


def _expired_recordings(ingest, count: int, profile=None) -> list[Recording]:
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    return [ingest(profile, days_ago=11) for _ in range(count)]


def test_two_purges_at_once_never_do_the_same_work(ingest):
    _expired_recordings(ingest, 60)
    barrier = threading.Barrier(2)

    def purge_in_small_batches() -> None:
        barrier.wait()
        purge.purge_expired(limit=7)

    threads = [_in_thread(purge_in_small_batches) for _ in range(2)]
    for thread, errors in threads:
        thread.join(60)
        assert not errors, errors

    assert Artefact.objects.filter(state="purged").count() == 120
    assert Recording.objects.filter(state="purged").count() == 60
    batches = LedgerEntry.objects.filter(kind="purge.batch")
    assert sum(b.payload["artefacts"] for b in batches) == 120  # each artefact counted once
    ranges = sorted(
        (b.payload["first_artefact"], b.payload["last_artefact"], b.payload["artefacts"])
        for b in batches
    )
    assert len(ranges) >= 2
    assert ledger_verify().ok


@pytest.mark.parametrize("hold_first", [True, False])
def test_a_hold_and_a_purge_at_the_same_instant_are_ordered(ingest, hold_first):
    """Whichever takes the profile's lock first wins; the other sees its result.
    Either the purge ran first (and the hold came after it), or the hold stands and
    nothing it covers is deleted. Never a deletion after the hold committed."""
    profile = ProfileFactory()
    recordings = _expired_recordings(ingest, 5, profile)
    first_has_lock = threading.Event()
    second_may_go = threading.Event()

    def place_hold() -> None:
        with transaction.atomic():
            legal_hold_place(profile=profile, reason="r", case_reference="c", actor="t")
            if hold_first:
                first_has_lock.set()
                second_may_go.wait(10)
                # hold the lock a little while the purge waits on it
                threading.Event().wait(0.3)

    def run_purge() -> None:
        if hold_first:
            first_has_lock.wait(10)
            second_may_go.set()
        purge.purge_expired()

    if hold_first:
        threads = [_in_thread(place_hold), _in_thread(run_purge)]
    else:
        purge_thread = _in_thread(run_purge)
        purge_thread[0].join(30)
        threads = [purge_thread, _in_thread(place_hold)]
    for thread, errors in threads:
        thread.join(30)
        assert not errors, errors

    states = set(Artefact.objects.filter(recording__in=recordings).values_list("state", flat=True))
    if hold_first:
        assert states == {"active"}
        assert LedgerEntry.objects.filter(kind="purge.skipped_held").exists()
    else:
        assert states == {"purged"}


def test_a_purge_waits_for_a_hold_that_is_being_placed(ingest):
    """The interleaving that a NOT EXISTS check alone gets wrong: the hold's
    transaction has locked the profile but not committed when the purge claims."""
    profile = ProfileFactory()
    recordings = _expired_recordings(ingest, 3, profile)
    hold_locked, release_hold = threading.Event(), threading.Event()
    purge_done = threading.Event()

    def place_hold_slowly() -> None:
        with transaction.atomic():
            legal_hold_place(profile=profile, reason="r", case_reference="c", actor="t")
            hold_locked.set()
            release_hold.wait(10)

    def run_purge() -> None:
        hold_locked.wait(10)
        purge.purge_expired()
        purge_done.set()

    hold_thread = _in_thread(place_hold_slowly)
    purge_thread = _in_thread(run_purge)
    assert not purge_done.wait(1.0), "the purge must wait for the hold's lock"
    release_hold.set()
    for thread, errors in (hold_thread, purge_thread):
        thread.join(30)
        assert not errors, errors
    assert set(
        Artefact.objects.filter(recording__in=recordings).values_list("state", flat=True)
    ) == {"active"}
    assert connection.vendor == "postgresql"
    assert timezone.now() - timedelta(days=11) > recordings[0].recorded_at - timedelta(hours=1)


def test_a_purge_goes_past_the_rows_another_purge_holds_instead_of_waiting(ingest):
    """SKIP LOCKED: two purges share the work; neither waits for the other's rows."""
    recordings = _expired_recordings(ingest, 6)
    taken = list(Artefact.objects.filter(recording__in=recordings[:3]).values_list("pk", flat=True))
    holding, release = threading.Event(), threading.Event()

    def another_purge_holds_its_claim() -> None:
        with transaction.atomic():
            list(Artefact.objects.select_for_update().filter(pk__in=taken).values_list("pk"))
            holding.set()
            release.wait(30)

    holder = _in_thread(another_purge_holds_its_claim)
    assert holding.wait(10)
    runs: list[purge.PurgeRun] = []
    purger = _in_thread(lambda: runs.append(purge.purge_expired()))
    purger[0].join(10)
    went_on = not purger[0].is_alive()
    release.set()
    for thread, errors in (holder, purger):
        thread.join(30)
        assert not errors, errors

    assert went_on, "the purge waited for rows another purge had claimed"
    assert runs[0].purged == 6
    assert set(Artefact.objects.filter(pk__in=taken).values_list("state", flat=True)) == {"active"}


def test_a_live_purge_slower_than_its_lease_is_not_taken_over(ingest, monkeypatch, settings):
    """The finishing worker holds its batch's rows locked: a takeover (SKIP LOCKED)
    leaves them to it however long its files take; only a dead worker's are free."""
    settings.PURGE_LEASE_SECONDS = 1
    _expired_recordings(ingest, 4)
    deleting, slow = threading.Event(), threading.Event()
    real_delete_files = purge._delete_files

    def delete_slowly(keys: list[str]) -> None:
        deleting.set()
        slow.wait(20)
        real_delete_files(keys)

    monkeypatch.setattr(purge, "_delete_files", delete_slowly)
    runs: list[purge.PurgeRun] = []
    first = _in_thread(lambda: runs.append(purge.purge_expired()))
    assert deleting.wait(10)
    time.sleep(1.5)  # the claim is now older than its lease
    started = time.monotonic()
    second = purge.purge_expired()
    second_took = time.monotonic() - started
    slow.set()
    first[0].join(30)
    assert not first[1], first[1]

    assert (second.taken_over, second.purged) == (0, 0)
    assert second_took < 5, "the takeover waited for the live worker instead of skipping"
    assert runs[0].purged == 8
    assert set(Artefact.objects.values_list("state", "purge_attempt")) == {("purged", 1)}
    assert LedgerEntry.objects.filter(kind="purge.batch").count() == 1


def _wait_for_lock_wait(seconds: float = 10) -> bool:
    """Until another backend of this database waits on a lock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND wait_event_type = 'Lock'"
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def test_a_policy_applied_during_a_claim_leaves_the_claimed_artefacts_alone(ingest):
    """A reschedule that read the rows as active while a purge was claiming them must
    not write them once they are `purging`."""
    recordings = _expired_recordings(ingest, 3)
    fresh = ingest(days_ago=1)
    claiming, commit = threading.Event(), threading.Event()

    def claim_slowly() -> None:
        with transaction.atomic():
            now = timezone.now()
            purge._claim(purge.due_artefacts(now), now=now, reason=None, limit=100, order=("id",))
            claiming.set()
            commit.wait(20)

    def apply_a_new_policy() -> None:
        retention_policy_create(jurisdiction="*", category="audio", retention_days=5, actor="t")
        retention_policies_apply()

    claimer = _in_thread(claim_slowly)
    assert claiming.wait(10)
    before = dict(Artefact.objects.values_list("pk", "expiry_basis"))
    applier = _in_thread(apply_a_new_policy)
    waited = _wait_for_lock_wait()
    commit.set()
    for thread, errors in (claimer, applier):
        thread.join(30)
        assert not errors, errors

    assert waited, "the policy's reschedule should have met the claim's locks"
    claimed = Artefact.objects.filter(recording__in=recordings)
    assert set(claimed.values_list("state", flat=True)) == {"purging"}
    assert {a.pk: a.expiry_basis for a in claimed} == {a.pk: before[a.pk] for a in claimed}
    audio = fresh.artefacts.get(category="audio")
    assert audio.expiry_basis != before[audio.pk]  # the rest was rescheduled


def test_a_deletion_request_waits_for_a_hold_being_placed_and_keeps_what_it_covers(ingest):
    """Recordings without artefacts are deleted by the request's finish itself: it
    takes the profile's lock (the hold's) before it reads the holds."""
    profile = ProfileFactory()
    bare = ingest(profile, audio=False)
    bare.artefacts.all().delete()
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    hold_locked, release_hold = threading.Event(), threading.Event()

    def place_hold_slowly() -> None:
        with transaction.atomic():
            legal_hold_place(profile=profile, reason="r", case_reference="c", actor="t")
            hold_locked.set()
            release_hold.wait(20)

    holder = _in_thread(place_hold_slowly)
    assert hold_locked.wait(10)
    runner = _in_thread(lambda: deletion_requests.deletion_request_run(public_id=request.public_id))
    waited = _wait_for_lock_wait()
    release_hold.set()
    for thread, errors in (holder, runner):
        thread.join(30)
        assert not errors, errors

    assert waited, "the request's finish should have waited for the hold's lock"
    bare.refresh_from_db()
    assert bare.state == "active"
    request.refresh_from_db()
    assert (request.status, request.recordings_held) == ("done", 1)


def test_a_purge_that_waited_for_a_retention_change_purges_by_the_new_expiry(ingest):
    """The claim reads its candidates before it locks their profiles: after the wait,
    what it locks must still be due, or a longer retention the user just chose loses."""
    profile = ProfileFactory(retention_choice="dont_save")
    recordings = [ingest(profile) for _ in range(3)]
    assert not Artefact.objects.filter(recording__in=recordings, expires_at__isnull=True).exists()
    changed, commit = threading.Event(), threading.Event()

    def keep_until_deleted_slowly() -> None:
        with transaction.atomic():
            profile_retention_set(profile=profile, choice="until_deleted", actor="t")
            changed.set()
            commit.wait(20)

    changer = _in_thread(keep_until_deleted_slowly)
    assert changed.wait(10)
    runs: list[purge.PurgeRun] = []
    purger = _in_thread(lambda: runs.append(purge.purge_expired()))
    waited = _wait_for_lock_wait()
    commit.set()
    for thread, errors in (changer, purger):
        thread.join(30)
        assert not errors, errors

    assert waited, "the purge should have waited for the retention change's lock"
    assert runs[0].purged == 0
    assert set(
        Artefact.objects.filter(recording__in=recordings).values_list("state", "expires_at")
    ) == {("active", None)}


def test_a_policy_applied_while_an_ingest_is_in_flight_reschedules_what_it_writes(
    ingest, monkeypatch
):
    """An ingest that read the policies before a new version committed, and writes its
    artefacts after that version's reschedule began, still ends under the new version:
    the reschedule waits for it before it decides how far to look."""
    retention_policy_create(jurisdiction="*", category="audio", retention_days=30, actor="t")
    retention_policies_apply()
    profile = ProfileFactory()
    scheduled, go = threading.Event(), threading.Event()
    write_rows = recording_services._write_rows

    def paused_after_scheduling(*args, **kwargs):
        if not scheduled.is_set():  # the first ingest only: its expiry is computed
            scheduled.set()
            go.wait(20)
        return write_rows(*args, **kwargs)

    monkeypatch.setattr(recording_services, "_write_rows", paused_after_scheduling)
    ingesting = _in_thread(lambda: ingest(profile, external_id="in-flight"))
    assert scheduled.wait(10)
    newer = retention_policy_create(jurisdiction="*", category="audio", retention_days=5, actor="t")
    applying = _in_thread(retention_policies_apply)
    waited = advisory_waiter(POLICY_LOCK_KEY, "ExclusiveLock", 15)
    go.set()
    for thread, errors in (ingesting, applying):
        thread.join(30)
        assert not errors, errors

    audio = Artefact.objects.get(recording__external_id="in-flight", category="audio")
    assert audio.expiry_basis == f"policy:{newer.pk}"
    assert audio.expires_at == audio.recording.recorded_at + timedelta(days=5)
    newer.refresh_from_db()
    assert newer.applied_at is not None
    assert waited, "the reschedule should have waited for the ingest in flight"


def test_a_policy_is_applied_while_recordings_keep_arriving(ingest, monkeypatch):
    """Under a steady ingest the reschedule still ends and marks its version applied:
    it looks at the artefacts written before it began, and every one written after is
    scheduled under the version already."""
    retention_policy_create(jurisdiction="*", category="audio", retention_days=30, actor="t")
    retention_policies_apply()
    profile = ProfileFactory()
    for _ in range(3):
        ingest(profile)
    newer = retention_policy_create(jurisdiction="*", category="audio", retention_days=5, actor="t")
    expiry_rows = retention_services._expiry_rows
    batches: list[int] = []

    def with_a_recording_arriving_first(*args, **kwargs):
        batches.append(1)
        if len(batches) > 20:
            raise AssertionError("the reschedule keeps chasing the recordings arriving")
        thread, errors = _in_thread(lambda: ingest(profile))
        thread.join(30)
        assert not errors, errors
        return expiry_rows(*args, **kwargs)

    monkeypatch.setattr(retention_services, "_expiry_rows", with_a_recording_arriving_first)
    assert retention_policies_apply() == 1

    newer.refresh_from_db()
    assert newer.applied_at is not None
    audio = Artefact.objects.filter(category="audio", state="active")
    assert audio.count() == 3 + len(batches)
    assert set(audio.values_list("expiry_basis", flat=True)) == {f"policy:{newer.pk}"}


def test_a_version_retired_while_its_reschedule_runs_stays_pending_for_the_next_run(
    ingest, monkeypatch
):
    """A run marks a version applied only as it read it: retired meanwhile, the version
    is left for the next run, which reschedules its scope without it."""
    profile = ProfileFactory()
    ingest(profile)
    policy = retention_policy_create(
        jurisdiction="*", category="audio", retention_days=5, actor="t"
    )
    reschedule = retention_services.artefacts_reschedule

    def retired_meanwhile(**kwargs):
        changed = reschedule(**kwargs)
        thread, errors = _in_thread(lambda: retention_policy_retire(policy=policy, actor="t"))
        thread.join(30)
        assert not errors, errors
        return changed

    monkeypatch.setattr(retention_services, "artefacts_reschedule", retired_meanwhile)
    retention_policies_apply()
    policy.refresh_from_db()
    assert policy.retired_at is not None
    assert policy.applied_at is None, "a retirement it never read was marked applied"

    monkeypatch.setattr(retention_services, "artefacts_reschedule", reschedule)
    retention_policies_apply(now=timezone.now() + timedelta(seconds=1))
    policy.refresh_from_db()
    assert policy.applied_at is not None
    audio = Artefact.objects.get(category="audio")
    assert audio.expiry_basis != f"policy:{policy.pk}"


def test_two_policy_runs_take_turns(ingest):
    """A second run waits for the first (each writes with the table of its own moment:
    at once, an older table could write a row after a newer one)."""
    retention_policy_create(jurisdiction="*", category="audio", retention_days=5, actor="t")
    holding, release = threading.Event(), threading.Event()

    def a_run_in_progress() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [retention_services._APPLY_LOCK_KEY])
            holding.set()
            release.wait(20)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [retention_services._APPLY_LOCK_KEY])

    first = _in_thread(a_run_in_progress)
    assert holding.wait(10)
    runs: list[int] = []
    second = _in_thread(lambda: runs.append(retention_policies_apply()))
    waited = advisory_waiter(retention_services._APPLY_LOCK_KEY, "ExclusiveLock", 15)
    assert runs == []  # still waiting
    release.set()
    for thread, errors in (first, second):
        thread.join(30)
        assert not errors, errors

    assert waited, "the second run should have waited for the first"
    assert runs == [1]
