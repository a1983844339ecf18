"""Opt-out against hand-off, on PostgreSQL with real transactions: a sample drawn at the
same moment as an opt-out either leaves that profile out or is revoked by it; there is
no third outcome (docs/invariants.md, invariant 1;
docs/reliability.md, "Opt-out against hand-off").

Forced interleavings in both orders (one side holds its transaction open while the
other runs into its lock), then a randomized stress run of 1,000 races."""

import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection, transaction

from compliance.accounts.models import Account, Profile, RetentionChoice
from compliance.actions.consent import consent_set
from compliance.actions.profiles import profile_retention_set
from compliance.consent import services as consent_services
from compliance.consent.models import ConsentDefault, ConsentLock, ConsentState
from compliance.consent.services import consent_lock_of
from compliance.core.errors import ApplicationError
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Artefact, Recording
from compliance.retention import purge
from compliance.retention.selectors import POLICY_LOCK_KEY
from compliance.retention.services import profile_reschedule
from compliance.sampling import services
from compliance.sampling.models import ReviewItem, ReviewItemState
from compliance.sampling.services import (
    SampleRequest,
    review_item_annotate,
    review_item_audio_open,
    sample_draw,
)
from tests.conftest import advisory_waiter, postgres_only
from tests.factories import ReviewerFactory

from .conftest import CLIP, HUMAN, LINK

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]

RACES = 1_000
PAIRS = 4  # opt-out/draw thread pairs racing at once
BASE = datetime(2026, 1, 1, tzinfo=UTC)
OPT_OUT_DELAY = 0.03  # seconds: about as long as a draw takes here
BLOCKED = 0.3  # seconds a side must stay blocked to count as waiting on the lock


@pytest.fixture(autouse=True)
def _ledger_flushable(transactional_db: None) -> Iterator[None]:
    """The flush after a transactional test TRUNCATEs every table, and the ledger's
    append-only trigger refuses that. For this connection only, and only for the flush
    (the connection is closed right after it), triggers are off."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")


def _world(count: int, *, on_default: bool = False) -> list[Recording]:
    """`count` profiles that granted human review, one clip each, recorded a minute
    apart, so that a draw restricted to minute i can only take recording i.

    `on_default`: the profiles have no consent-state row at all and rely on their
    jurisdiction's default, which grants human review."""
    accounts = Account.objects.bulk_create(
        Account(external_id=f"race-a{i}", jurisdiction="DE") for i in range(count)
    )
    profiles = Profile.objects.bulk_create(
        Profile(external_id=f"race-p{i}", account=a) for i, a in enumerate(accounts)
    )
    if on_default:
        ConsentDefault.objects.create(jurisdiction="DE", purpose=HUMAN, granted=True)
    else:
        ConsentState.objects.bulk_create(
            ConsentState(profile=p, purpose=purpose, granted=purpose == HUMAN)
            for p in profiles
            for purpose in (HUMAN, "model_training")
        )
    recordings = Recording.objects.bulk_create(
        Recording(external_id=f"race-r{i}", profile=p, recorded_at=BASE + timedelta(minutes=i))
        for i, p in enumerate(profiles)
    )
    # a file of its own each: a stored object has one owner (artefact_storage_key_owner)
    Artefact.objects.bulk_create(
        Artefact(
            recording=r,
            category="audio",
            storage_key=default_storage.save(f"audio/race/clip-{i}.wav", ContentFile(CLIP)),
        )
        for i, r in enumerate(recordings)
    )
    return recordings


def _draw_minute(
    i: int, *, minutes: int = 1, reviewer: str | None = None, now: datetime | None = None
) -> list[str]:
    request = SampleRequest(
        purpose=HUMAN,
        size=minutes,
        reviewer_location="DE",
        reviewer=reviewer,
        recorded_from=BASE + timedelta(minutes=i),
        recorded_to=BASE + timedelta(minutes=i + minutes),
    )
    draw = sample_draw(request=request, actor="client:race", now=now)
    return [item.id for item in draw.items]


def _withdraw(profile: Profile) -> None:
    consent_set(
        profile=profile,
        purpose=HUMAN,
        granted=False,
        channel="app",
        notice_version="v1",
        actor="race",
    )


def _lock_row_missing(profile: Profile) -> None:
    """The profile's consent lock row gone, as after a flush: the side that may wait
    creates it."""
    ConsentLock.objects.filter(pk=consent_lock_of(profile.pk)).delete()


def _fetchable(item_id: str) -> bool:
    try:
        clip = review_item_audio_open(item_id=item_id, caller=LINK)
    except ApplicationError as refusal:
        assert refusal.status_code == 410, refusal.code
        return False
    clip.file.close()
    return True


class _Thread(threading.Thread):
    """Runs `work` on its own database connection, closed at the end; keeps what it
    returned or raised."""

    def __init__(self, work: Callable[[], Any]) -> None:
        super().__init__(daemon=True)
        self.work = work
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.work()
        except BaseException as error:  # re-raised in the test's thread
            self.error = error
        finally:
            connection.close()

    def outcome(self, timeout: float = 30) -> Any:
        self.join(timeout)
        assert not self.is_alive(), "the thread is stuck"
        if self.error is not None:
            raise self.error
        return self.result


def _held(action: Callable[[], Any], holding: threading.Event, release: threading.Event):
    """`action` inside a transaction that stays open until `release` is set."""

    def work() -> Any:
        with transaction.atomic():
            result = action()
            holding.set()
            assert release.wait(30)
        return result

    return work


def test_a_draw_holding_its_locks_makes_the_opt_out_wait_and_then_revoke_it():
    [recording] = _world(1)
    holding, release = threading.Event(), threading.Event()
    drawer = _Thread(_held(lambda: _draw_minute(0), holding, release))
    drawer.start()
    assert holding.wait(30)

    opt_out = _Thread(lambda: _withdraw(recording.profile))
    opt_out.start()
    time.sleep(BLOCKED)
    assert opt_out.is_alive(), "the opt-out did not wait for the draw's lock"
    release.set()
    [item] = drawer.outcome()
    opt_out.outcome()

    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.REVOKED
    assert not _fetchable(item)


@pytest.mark.parametrize("lock_row", ["present", "missing"])
def test_an_opt_out_holding_its_lock_makes_the_draw_wait_and_leave_the_profile_out(lock_row):
    # "missing": the profile's consent lock row gone (as after a flush): the opt-out
    # creates it, and the draw waits all the same
    [recording] = _world(1)
    if lock_row == "missing":
        _lock_row_missing(recording.profile)
    holding, release = threading.Event(), threading.Event()
    opt_out = _Thread(_held(lambda: _withdraw(recording.profile), holding, release))
    opt_out.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_minute(0))
    drawer.start()
    time.sleep(BLOCKED)
    assert drawer.is_alive(), "the draw did not wait for the opt-out's lock"
    release.set()
    opt_out.outcome()

    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_a_fetch_holding_its_lock_makes_the_opt_out_wait_and_then_the_next_fetch_fails():
    [recording] = _world(1)
    [item] = _draw_minute(0)
    holding, release = threading.Event(), threading.Event()

    def fetch() -> bool:
        review_item_audio_open(item_id=item, caller=LINK).file.close()
        return True

    fetcher = _Thread(_held(fetch, holding, release))
    fetcher.start()
    assert holding.wait(30)
    opt_out = _Thread(lambda: _withdraw(recording.profile))
    opt_out.start()
    time.sleep(BLOCKED)
    assert opt_out.is_alive(), "the opt-out did not wait for the fetch's lock"
    release.set()

    assert fetcher.outcome() is True
    opt_out.outcome()
    assert not _fetchable(item)


def test_an_opt_out_holding_its_lock_makes_the_fetch_wait_and_refuse():
    [recording] = _world(1)
    [item] = _draw_minute(0)
    holding, release = threading.Event(), threading.Event()
    opt_out = _Thread(_held(lambda: _withdraw(recording.profile), holding, release))
    opt_out.start()
    assert holding.wait(30)

    fetcher = _Thread(lambda: _fetchable(item))
    fetcher.start()
    time.sleep(BLOCKED)
    assert fetcher.is_alive(), "the fetch did not wait for the opt-out's lock"
    release.set()
    opt_out.outcome()

    assert fetcher.outcome() is False


def test_a_thousand_opt_out_and_draw_races_leave_no_fetchable_item_of_a_withdrawn_profile():
    recordings = _world(RACES)
    drawn: dict[int, list[str]] = {}

    def side(races: list[int], barrier: threading.Barrier, act: Callable[[int], Any], delay: float):
        def work() -> None:
            rng = random.Random(races[0] * 2 + (act is _opt_out))
            for i in races:
                barrier.wait(30)
                # The opt-out lands anywhere in the draw: before its pick, between the
                # pick and the locks, while it holds them, or after it committed.
                time.sleep(rng.random() * delay)
                act(i)

        return work

    def _opt_out(i: int) -> None:
        _withdraw(recordings[i].profile)

    def _sample(i: int) -> None:
        drawn[i] = _draw_minute(i)

    threads = []
    for pair in range(PAIRS):
        races = list(range(pair, RACES, PAIRS))
        barrier = threading.Barrier(2)
        threads += [
            _Thread(side(races, barrier, _opt_out, OPT_OUT_DELAY)),
            _Thread(side(races, barrier, _sample, 0.001)),
        ]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.outcome(timeout=120)
    elapsed = time.monotonic() - started

    assert len(drawn) == RACES
    withdrawn = ConsentState.objects.filter(purpose=HUMAN, granted=False).count()
    assert withdrawn == RACES
    items = list(ReviewItem.objects.values_list("pk", "recording_id", "state"))
    excluded = sum(1 for ids in drawn.values() if not ids)
    at_recheck = sum(
        e.payload["dropped_at_recheck"]
        for e in LedgerEntry.objects.filter(kind="sample.drawn", actor="client:race")
    )
    revoked = sum(1 for _, _, state in items if state == ReviewItemState.REVOKED)
    assert excluded + revoked == RACES, (excluded, revoked)
    assert {state for _, _, state in items} <= {ReviewItemState.REVOKED}
    still_fetchable = [pk for pk, _, _ in items if _fetchable(pk)]
    assert still_fetchable == []
    # Both orders happened: the race was run, not one side always first.
    assert excluded > 0 and revoked > 0, (excluded, revoked)
    print(  # shown with -s: how the races fell
        f"{RACES} races in {elapsed:.1f} s: {excluded} draws left the profile out"
        f" ({at_recheck} of them at the re-check under the lock),"
        f" {revoked} drawn items were revoked, 0 fetchable"
    )


def test_concurrent_draws_never_hand_out_one_recording_twice():
    _world(60)
    barrier = threading.Barrier(6)

    def drawer() -> list[str]:
        barrier.wait(30)
        request = SampleRequest(purpose=HUMAN, size=15, reviewer_location="DE")
        return [item.id for item in sample_draw(request=request, actor="client:race").items]

    threads = [_Thread(drawer) for _ in range(6)]
    for thread in threads:
        thread.start()
    drawn = [item for thread in threads for item in thread.outcome()]

    recordings = list(ReviewItem.objects.values_list("recording_id", flat=True))
    assert len(drawn) == len(recordings) == len(set(recordings)) == 60


# --- a profile that relies on its jurisdiction's default -------------------------------


def test_a_draw_of_a_profile_on_its_default_makes_the_opt_out_wait_and_then_revoke_it():
    # given a profile without a consent-state row (the draw meets the opt-out on the
    # profile's consent lock, which needs none)
    [recording] = _world(1, on_default=True)
    assert not ConsentState.objects.exists()
    holding, release = threading.Event(), threading.Event()
    drawer = _Thread(_held(lambda: _draw_minute(0), holding, release))
    drawer.start()
    assert holding.wait(30)

    opt_out = _Thread(lambda: _withdraw(recording.profile))
    opt_out.start()
    time.sleep(BLOCKED)
    assert opt_out.is_alive(), "the opt-out did not wait for the draw's lock"
    release.set()
    [item] = drawer.outcome()
    opt_out.outcome()

    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.REVOKED
    assert not _fetchable(item)


def test_an_opt_out_of_a_profile_on_its_default_makes_the_draw_wait_and_leave_it_out():
    [recording] = _world(1, on_default=True)
    holding, release = threading.Event(), threading.Event()
    opt_out = _Thread(_held(lambda: _withdraw(recording.profile), holding, release))
    opt_out.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_minute(0))
    drawer.start()
    time.sleep(BLOCKED)
    assert drawer.is_alive(), "the draw did not wait for the opt-out's lock"
    release.set()
    opt_out.outcome()

    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


# --- the reviewer's daily quota ----------------------------------------------------------


def test_two_draws_for_one_reviewer_are_ordered_and_the_second_cannot_pass_the_quota():
    # given a quota of 2 and two draws of 2 over disjoint recordings (minutes 0-1 and 2-3),
    # so that nothing but the reviewer's row can order them; the first at midnight, the
    # first instant of the day whose quota it counts to
    _world(4)
    reviewer = ReviewerFactory(location="DE", daily_quota=2)
    name = reviewer.user.username
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    holding, release = threading.Event(), threading.Event()
    first = _Thread(
        _held(lambda: _draw_minute(0, minutes=2, reviewer=name, now=midnight), holding, release)
    )
    first.start()
    assert holding.wait(30)

    second = _Thread(
        lambda: _draw_minute(2, minutes=2, reviewer=name, now=midnight + timedelta(hours=1))
    )
    second.start()
    time.sleep(BLOCKED)
    assert second.is_alive(), "the second draw did not wait for the reviewer's row"
    release.set()

    assert len(first.outcome()) == 2
    with pytest.raises(ApplicationError) as refused:
        second.outcome()
    assert (refused.value.code, refused.value.status_code) == ("quota_exceeded", 429)
    assert ReviewItem.objects.filter(reviewer=reviewer).count() == 2


# --- a purge tombstoning what a draw takes ------------------------------------------------

EXPIRY = datetime(2026, 6, 1, tzinfo=UTC)
BEFORE_EXPIRY = EXPIRY - timedelta(minutes=1)


def _due(recording: Recording) -> None:
    """The recording's audio (its only artefact) is past its retention since EXPIRY."""
    Artefact.objects.filter(recording=recording).update(expires_at=EXPIRY, expiry_basis="policy:1")


def test_a_purge_holding_the_recording_makes_the_draw_wait_and_leave_it_out():
    # given a purge that has tombstoned the recording and not committed yet, and a draw
    # (at an instant before the expiry) whose pick still sees the recording active
    [recording] = _world(1)
    _due(recording)
    holding, release = threading.Event(), threading.Event()
    purger = _Thread(_held(purge.purge_expired, holding, release))
    purger.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_minute(0, now=BEFORE_EXPIRY))
    drawer.start()
    time.sleep(BLOCKED)
    assert drawer.is_alive(), "the draw did not wait for the purge's lock"
    release.set()
    assert purger.outcome().recordings_purged == 1

    # then the draw's re-check saw the tombstone: no item of a purged recording
    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_a_draw_holding_the_recording_makes_the_purge_wait_and_then_revoke_its_item():
    [recording] = _world(1)
    _due(recording)
    holding, release = threading.Event(), threading.Event()
    drawer = _Thread(_held(lambda: _draw_minute(0, now=BEFORE_EXPIRY), holding, release))
    drawer.start()
    assert holding.wait(30)

    purger = _Thread(purge.purge_expired)
    purger.start()
    time.sleep(BLOCKED)
    assert purger.is_alive(), "the purge did not wait for the draw's lock"
    release.set()
    [item] = drawer.outcome()

    assert purger.outcome().recordings_purged == 1
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.REVOKED
    assert ReviewItem.objects.get(pk=item).close_reason == "purged"


# --- hand-offs of one profile -----------------------------------------------------------


def test_a_draw_holding_a_profiles_consent_lock_does_not_make_its_clip_access_wait(
    monkeypatch,
):
    """Hand-offs share the consent lock (FOR KEY SHARE): only an opt-out waits for them."""
    # given one profile with two recordings, the second already drawn
    first, second = _world(2)
    Recording.objects.filter(pk=second.pk).update(profile=first.profile)
    [item] = _draw_minute(1)
    locked, go = threading.Event(), threading.Event()
    recheck = services.candidates_recheck

    def paused(*args: Any, **kwargs: Any) -> Any:
        # the draw of the first recording holds the profile's lock, and the recording's
        locked.set()
        assert go.wait(30)
        return recheck(*args, **kwargs)

    monkeypatch.setattr(services, "candidates_recheck", paused)
    drawer = _Thread(lambda: _draw_minute(0))
    drawer.start()
    try:
        assert locked.wait(30)

        # then the clip of the second recording is served meanwhile
        fetcher = _Thread(lambda: _fetchable(item))
        fetcher.start()
        assert fetcher.outcome(timeout=10), "the clip access waited for the draw"
    finally:
        go.set()
    assert len(drawer.outcome()) == 1


def test_an_annotation_queued_behind_the_policies_holds_nothing_a_withdrawal_waits_for():
    """`retention_policies_apply` takes the policies' lock exclusively for one read, and
    writes that create artefacts queue behind it meanwhile. An annotation queues there
    before it takes its hand-off's locks, so an opt-out does not wait with it."""
    [recording] = _world(1)
    [item] = _draw_minute(0)
    holding, release = threading.Event(), threading.Event()

    def apply_bound() -> None:  # as artefacts_scheduled_so_far holds it
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [POLICY_LOCK_KEY])
            holding.set()
            assert release.wait(30)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [POLICY_LOCK_KEY])

    bound = _Thread(apply_bound)
    bound.start()
    assert holding.wait(30)
    annotator = _Thread(lambda: review_item_annotate(item_id=item, text="x", caller=LINK))
    annotator.start()
    try:
        assert advisory_waiter(POLICY_LOCK_KEY, "ShareLock", 15), "the annotation did not queue"

        opt_out = _Thread(lambda: _withdraw(recording.profile))
        opt_out.start()
        opt_out.outcome(timeout=10)  # fails as stuck if it waits for the annotation's locks
    finally:
        release.set()
    bound.outcome()

    # then the annotation, let through, re-checks under its locks and is refused
    with pytest.raises(ApplicationError):
        annotator.outcome()
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.REVOKED
    assert not Artefact.objects.filter(category="annotation").exists()


def test_an_annotation_waits_for_a_retention_choice_change_of_its_profile_and_follows_it():
    """The change locks the profile and reschedules the profile's artefacts; an
    annotation takes the profile FOR SHARE before it reads the choice for its own
    expiry, as the ingest does. It waits, then schedules by the new choice, where
    reading the choice unlocked it scheduled by the old one after the reschedule."""
    [recording] = _world(1)
    [item] = _draw_minute(0)
    holding, release = threading.Event(), threading.Event()

    def change() -> None:
        profile_retention_set(
            profile=recording.profile, choice=RetentionChoice.EIGHTEEN_MONTHS, actor="race"
        )

    changer = _Thread(_held(change, holding, release))
    changer.start()
    assert holding.wait(30)
    annotator = _Thread(lambda: review_item_annotate(item_id=item, text="x", caller=LINK))
    annotator.start()
    time.sleep(BLOCKED)
    assert annotator.is_alive(), "the annotation did not wait for the choice change"
    release.set()
    changer.outcome()
    annotation = annotator.outcome()

    # then its expiry is the new choice's: rescheduling the profile now changes nothing
    scheduled = Artefact.objects.get(pk=annotation.pk).expires_at
    assert scheduled is not None
    with transaction.atomic():
        profile_reschedule(profile=recording.profile)
    assert Artefact.objects.get(pk=annotation.pk).expires_at == scheduled


# --- the lock order ----------------------------------------------------------------------


def test_a_writer_locking_consent_then_recording_and_a_draw_do_not_deadlock():
    """The agreed order puts consent locks before recordings: a transaction that
    withdraws and then changes the recording (as any writer may) must not deadlock with
    a draw that picked that recording."""
    [recording] = _world(1)
    holding, go = threading.Event(), threading.Event()

    def writer() -> None:
        with transaction.atomic():
            _withdraw(recording.profile)  # the profile's consent lock, FOR UPDATE
            holding.set()
            assert go.wait(30)
            Recording.objects.filter(pk=recording.pk).update(sensitive=True)

    writing = _Thread(writer)
    writing.start()
    assert holding.wait(30)
    drawer = _Thread(lambda: _draw_minute(0))
    drawer.start()
    time.sleep(BLOCKED)
    assert drawer.is_alive(), "the draw did not wait for the consent lock"
    go.set()

    writing.outcome()  # a deadlock would abort one of the two
    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_an_annotation_and_a_purge_of_its_recording_do_not_deadlock(monkeypatch):
    """The purge locks the recording and then revokes its items; the annotation locks
    the item and inserts an artefact of the recording (its foreign key locks the
    recording). The gate takes the recording before the item, so one waits for the
    other instead of each for the other."""
    [recording] = _world(1)
    [item] = _draw_minute(0, now=BEFORE_EXPIRY)
    _due(recording)
    checked, go = threading.Event(), threading.Event()
    create = services.annotation_create

    def paused(**kwargs: Any) -> Any:
        # the gate has re-checked and holds its locks, the annotation not yet inserted;
        # the purge now runs into them
        checked.set()
        assert go.wait(30)
        return create(**kwargs)

    monkeypatch.setattr(services, "annotation_create", paused)
    annotator = _Thread(
        lambda: review_item_annotate(item_id=item, text="x", caller=LINK, now=BEFORE_EXPIRY)
    )
    annotator.start()
    assert checked.wait(30)
    purger = _Thread(purge.purge_expired)
    purger.start()
    time.sleep(BLOCKED)
    assert purger.is_alive(), "the purge did not wait for the annotation's locks"
    go.set()

    annotation = annotator.outcome()  # a deadlock would abort one of the two
    purger.outcome()
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.DONE
    assert Artefact.objects.get(pk=annotation.pk).category == "annotation"


# --- a top-up round, which already holds the first round's locks ------------------------


def _picks(monkeypatch: pytest.MonkeyPatch, *rounds: list[Recording]) -> None:
    """The draw's pick returns these recordings, one list a round, and then nothing: as
    if the uniform pick had chosen them."""
    queue = [[r.pk for r in chosen] for chosen in rounds]
    monkeypatch.setattr(services, "sample_pick", lambda **_: queue.pop(0) if queue else [])


def _draw_one(purpose: str = HUMAN, now: datetime | None = None) -> list[str]:
    request = SampleRequest(purpose=purpose, size=1, reviewer_location="DE")
    return [item.id for item in sample_draw(request=request, actor="client:race", now=now).items]


def _row_lock_waits() -> list[str]:
    """What the backends of this database that wait on a row (a tuple or a transaction
    holding one) are running; a wait for the ledger's advisory lock is not one."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock' AND wait_event IN ('transactionid', 'tuple')"
        )
        return [row[0] for row in cursor.fetchall()]


def _skips_the_held_rows(release: threading.Event) -> None:
    """The draw runs on while the other side holds its transaction: it may wait for the
    ledger's lock (appends are serialised, last), never for a row the other side holds.
    The other side is released either way."""
    try:
        time.sleep(BLOCKED)
        assert _row_lock_waits() == [], "the top-up round waited for a row it should skip"
    finally:
        release.set()


@pytest.mark.parametrize(
    ("purpose", "withdrawn"),
    [(HUMAN, HUMAN), ("model_training", HUMAN), ("model_training", "model_training")],
)
def test_a_top_up_round_skips_a_recording_whose_consent_an_opt_out_holds(
    monkeypatch, purpose, withdrawn
):
    # given a first pick that the re-check drops (a sensitive clip), and a second pick
    # whose profile is withdrawing (uncommitted) one of the purposes the draw needs
    lost, taken = _world(2)
    ConsentState.objects.update(granted=True)
    Recording.objects.filter(pk=lost.pk).update(sensitive=True)
    _picks(monkeypatch, [lost], [taken])
    holding, release = threading.Event(), threading.Event()

    def withdraw() -> None:
        consent_set(
            profile=taken.profile,
            purpose=withdrawn,
            granted=False,
            channel="app",
            notice_version="v1",
            actor="race",
        )

    opt_out = _Thread(_held(withdraw, holding, release))
    opt_out.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_one(purpose))
    drawer.start()
    _skips_the_held_rows(release)
    opt_out.outcome()

    # then the round left the profile out rather than judge it under a withdrawal in flight
    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_a_top_up_round_skips_a_recording_a_purge_holds(monkeypatch):
    lost, taken = _world(2)
    Recording.objects.filter(pk=lost.pk).update(sensitive=True)
    _due(taken)
    _picks(monkeypatch, [lost], [taken])
    holding, release = threading.Event(), threading.Event()
    purger = _Thread(_held(purge.purge_expired, holding, release))
    purger.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_one(now=BEFORE_EXPIRY))
    drawer.start()
    _skips_the_held_rows(release)
    assert purger.outcome().recordings_purged == 1

    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_an_opt_out_of_model_training_makes_a_training_draw_wait_and_leave_it_out():
    # a draw for model training needs both grants; a withdrawal of either holds it
    [recording] = _world(1)
    ConsentState.objects.update(granted=True)
    holding, release = threading.Event(), threading.Event()

    def withdraw_training() -> None:
        consent_set(
            profile=recording.profile,
            purpose="model_training",
            granted=False,
            channel="app",
            notice_version="v1",
            actor="race",
        )

    opt_out = _Thread(_held(withdraw_training, holding, release))
    opt_out.start()
    assert holding.wait(30)

    drawer = _Thread(lambda: _draw_one("model_training"))
    drawer.start()
    time.sleep(BLOCKED)
    assert drawer.is_alive(), "the draw did not wait for the opt-out's lock"
    release.set()
    opt_out.outcome()

    assert drawer.outcome() == []
    assert not ReviewItem.objects.exists()


def test_a_consent_lock_row_created_by_another_just_before_the_draw_creates_it_is_locked_too(
    monkeypatch,
):
    """The draw found no row and goes to create it; another hand-off creates and commits
    it first, so the draw's insert does nothing. The row must still be locked by the
    draw: an opt-out then waits for the draw and revokes its item."""
    [recording] = _world(1)
    _lock_row_missing(recording.profile)
    create = consent_services._consent_locks_create
    first = threading.Lock()

    def another_first(rows: list[int]) -> None:
        if not first.acquire(blocking=False):
            return create(rows)  # the other hand-off's own creation

        def hand_off() -> None:
            with transaction.atomic():
                consent_services.consent_locks_take(profile_ids=[recording.profile.pk])

        other = _Thread(hand_off)
        other.start()
        other.outcome()
        assert ConsentLock.objects.filter(pk__in=rows).count() == len(rows)
        return create(rows)

    monkeypatch.setattr(consent_services, "_consent_locks_create", another_first)
    holding, release = threading.Event(), threading.Event()
    drawer = _Thread(_held(lambda: _draw_minute(0), holding, release))
    drawer.start()
    assert holding.wait(30)
    monkeypatch.undo()

    opt_out = _Thread(lambda: _withdraw(recording.profile))
    opt_out.start()
    time.sleep(BLOCKED)
    assert opt_out.is_alive(), "the opt-out did not wait for the draw's lock"
    release.set()
    [item] = drawer.outcome()
    opt_out.outcome()

    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.REVOKED
