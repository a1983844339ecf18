import json
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.accounts.models import Profile
from compliance.actions.consent import consent_set
from compliance.core.errors import ApplicationError, FieldError
from compliance.ledger.models import LedgerEntry, LedgerEntryPart
from compliance.recordings.models import Artefact, Recording
from compliance.retention.selectors import policy_table
from compliance.sampling import services
from compliance.sampling.models import ReviewItem, ReviewItemState
from compliance.sampling.services import (
    SAMPLE_SIZE_LIMIT,
    SampleRequest,
    review_item_annotate,
    review_item_audio_open,
    review_items_expire,
    review_items_revoke_for_profile,
    review_items_revoke_for_recordings,
    reviewer_create,
    sample_draw,
)
from tests.factories import ReviewerFactory, UserFactory

from .conftest import HUMAN, LINK, TRAINING, reviewable

pytestmark = pytest.mark.django_db

# Statements per clip access, the ledger's append included (on PostgreSQL one statement:
# the advisory lock, the chain's head and the entry; elsewhere the head and the entry).
# Pinned: a new read of the recording, or of anything else, on this path shows up here
# first. One of them locks the recording between the consent lock and the item (the
# lock order). On PostgreSQL the consent lock is a statement of its own; SQLite, which
# takes no row locks, runs none. An annotation reads the policies and its profile
# afresh (locked FOR SHARE on PostgreSQL) in one statement, as the ingest does.
_POSTGRESQL = connection.vendor == "postgresql"
_LEDGER_APPEND = 1 if _POSTGRESQL else 2
_CONSENT_LOCK = 1 if _POSTGRESQL else 0
GATE_AUDIO_QUERIES = 9 + _CONSENT_LOCK + _LEDGER_APPEND
GATE_ANNOTATE_QUERIES = 11 + _CONSENT_LOCK + _LEDGER_APPEND


def _draw(size: int = 10, purpose: str = HUMAN, now: datetime | None = None, **fields) -> list[str]:
    request = SampleRequest(purpose=purpose, size=size, reviewer_location="DE", **fields)
    return [item.id for item in sample_draw(request=request, actor="client:t", now=now).items]


def _states() -> dict[str, str]:
    return dict(ReviewItem.objects.values_list("pk", "state"))


def test_revoking_for_recordings_closes_their_open_items_only():
    recordings = [reviewable() for _ in range(4)]
    ids = _draw()
    done = ReviewItem.objects.get(recording=recordings[0])
    done.state = ReviewItemState.DONE
    done.save()
    before = LedgerEntry.objects.count()

    revoked = review_items_revoke_for_recordings(
        recording_ids=[r.pk for r in recordings[:3]], reason="purged"
    )

    assert revoked == 2
    states = _states()
    assert sorted(states.values()) == ["done", "pending", "revoked", "revoked"]
    assert set(
        ReviewItem.objects.filter(state="revoked").values_list("close_reason", flat=True)
    ) == {"purged"}
    entry = LedgerEntry.objects.latest("seq")
    assert LedgerEntry.objects.count() == before + 1
    assert (entry.kind, entry.payload["items"], entry.payload["reason"]) == (
        "review_items.revoked",
        2,
        "purged",
    )
    assert len(ids) == 4


def test_revoking_again_changes_and_records_nothing():
    recording = reviewable()
    _draw()
    review_items_revoke_for_recordings(recording_ids=[recording.pk], reason="purged")
    before = LedgerEntry.objects.count()

    again = review_items_revoke_for_recordings(recording_ids=[recording.pk], reason="purged")
    none = review_items_revoke_for_recordings(recording_ids=[], reason="purged")

    assert (again, none) == (0, 0)
    assert LedgerEntry.objects.count() == before


def test_a_withdrawal_revokes_in_the_same_transaction_as_the_consent_change():
    recording = reviewable()
    reviewable()
    _draw()
    mine = ReviewItem.objects.get(recording=recording).pk
    theirs = ReviewItem.objects.exclude(recording=recording).get().pk

    with pytest.raises(RuntimeError), transaction.atomic():
        consent_set(
            profile=recording.profile,
            purpose=HUMAN,
            granted=False,
            channel="app",
            notice_version="v1",
            actor="t",
        )
        assert ReviewItem.objects.get(pk=mine).state == ReviewItemState.REVOKED
        raise RuntimeError("the consent change fails after the revocation")

    # Rolled back together: neither the withdrawal nor the revocation happened.
    assert ReviewItem.objects.get(pk=mine).state == ReviewItemState.PENDING
    assert recording.profile.consent_states.get(purpose=HUMAN).granted is True
    assert ReviewItem.objects.get(pk=theirs).state == ReviewItemState.PENDING


def test_a_grant_revokes_nothing():
    recording = reviewable()
    _draw()

    consent_set(
        profile=recording.profile,
        purpose=HUMAN,
        granted=True,
        channel="app",
        notice_version="v9",
        actor="t",
    )

    assert review_items_revoke_for_profile(profile=recording.profile, purpose=HUMAN) == 1
    assert set(_states().values()) == {"revoked"}


def test_the_expiry_sweep_closes_open_items_past_their_expiry_once():
    reviewer = ReviewerFactory(location="DE")
    for _ in range(3):
        reviewable()
    _draw(size=2, reviewer=reviewer.user.username)
    _draw(size=1)  # link-only: expires in minutes
    later = timezone.now() + timedelta(hours=1)

    expired = review_items_expire(now=later)
    again = review_items_expire(now=later)

    assert (expired, again) == (1, 0)
    assert sorted(_states().values()) == ["expired", "pending", "pending"]
    assert LedgerEntry.objects.latest("seq").kind == "review_items.expired"
    assert review_items_expire(now=later + timedelta(hours=8)) == 2


def test_an_expired_item_frees_its_recording_for_a_later_draw_unless_it_was_heard():
    heard = reviewable()
    unheard = reviewable()
    ids = _draw(size=2)
    heard_item = ReviewItem.objects.get(recording=heard)
    review_item_audio_open(item_id=heard_item.pk, caller=LINK).file.close()
    review_items_expire(now=timezone.now() + timedelta(hours=1))

    again = _draw(size=2)

    assert len(ids) == 2
    assert len(again) == 1
    assert ReviewItem.objects.get(pk=again[0]).recording == unheard


def test_the_audio_gate_raises_410_for_a_revoked_item():
    recording = reviewable()
    [item] = _draw()
    review_items_revoke_for_recordings(recording_ids=[recording.pk], reason="purged")

    with pytest.raises(ApplicationError) as refused:
        review_item_audio_open(item_id=item, caller=LINK)

    assert (refused.value.status_code, refused.value.code) == (410, "revoked")


def test_reviewer_create_validates_and_records():
    user = UserFactory()

    reviewer = reviewer_create(user=user, location="IE", actor="t")

    assert (reviewer.location, reviewer.daily_quota) == ("IE", 1000)
    assert LedgerEntry.objects.latest("seq").kind == "reviewer.created"
    for bad in ({"location": "XX"}, {"location": "IE", "daily_quota": -1}):
        with pytest.raises(ApplicationError):
            reviewer_create(user=UserFactory(), actor="t", **bad)
    with pytest.raises(ApplicationError) as duplicate:
        reviewer_create(user=user, location="IE", actor="t")
    assert duplicate.value.status_code == 409


def test_a_draw_runs_a_bounded_number_of_queries(django_assert_max_num_queries):
    for _ in range(20):
        reviewable()

    with django_assert_max_num_queries(16):
        ids = _draw(size=20)

    assert len(ids) == 20


def test_the_expiry_task_runs_the_sweep():
    from compliance.sampling.tasks import review_items_expire_task

    reviewable()
    _draw(size=1)  # link-only: minutes

    with time_machine.travel(timezone.now() + timedelta(hours=1)):
        assert review_items_expire_task() == 1

    assert set(_states().values()) == {"expired"}


def test_create_reviewer_makes_a_user_a_reviewer():
    user = UserFactory(username="rita")
    out = StringIO()

    call_command("create_reviewer", "rita", "--location", "IE", "--quota", "200", stdout=out)

    assert (user.reviewer.location, user.reviewer.daily_quota) == ("IE", 200)
    assert "rita at IE" in out.getvalue()
    with pytest.raises(CommandError):
        call_command("create_reviewer", "nobody", "--location", "IE")
    with pytest.raises(CommandError):
        call_command("create_reviewer", "rita", "--location", "IE")


def test_a_purge_revokes_the_open_items_of_what_it_tombstones():
    from datetime import timedelta

    from django.utils import timezone

    from compliance.recordings.models import Artefact
    from compliance.retention import purge

    gone, kept = reviewable(), reviewable()
    _draw()
    Artefact.objects.filter(recording=gone).update(
        expires_at=timezone.now() - timedelta(seconds=1), expiry_basis="policy:1"
    )

    assert purge.purge_expired().recordings_purged == 1

    assert ReviewItem.objects.get(recording=gone).state == ReviewItemState.REVOKED
    assert ReviewItem.objects.get(recording=gone).close_reason == "purged"
    assert ReviewItem.objects.get(recording=kept).state == ReviewItemState.PENDING


# --- the gate reads the recording once per access ----------------------------------


def _recording_reads(queries) -> int:
    """SELECTs of the recording table, its one lock (which reads nothing but its id)
    aside; the lock itself is counted by `_recording_locks`."""
    table = Recording._meta.db_table
    return sum(
        1
        for q in queries
        if q["sql"].startswith("SELECT") and table in q["sql"] and not _locks_recording(q)
    )


def _locks_recording(query) -> bool:
    table = Recording._meta.db_table
    # Django leaves the FOR NO KEY UPDATE out on SQLite, which locks the whole database
    lock = f'SELECT "{table}"."id" AS "pk" FROM "{table}" WHERE'  # noqa: S608 (a prefix, not run)
    return query["sql"].startswith(lock)


def _recording_locks(queries) -> int:
    return sum(1 for q in queries if _locks_recording(q))


def test_an_audio_access_reads_its_recording_once_besides_the_recheck(
    django_assert_num_queries,
):
    reviewable()
    [item] = _draw(size=1)

    with django_assert_num_queries(GATE_AUDIO_QUERIES) as queries:
        review_item_audio_open(item_id=item, caller=LINK).file.close()

    assert _recording_reads(queries) == 2  # the gate's one read, and the rule's re-check
    assert _recording_locks(queries) == 1
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.DELIVERED


def test_an_annotation_reads_its_recording_once_besides_the_recheck(
    django_assert_num_queries,
):
    recording = reviewable()
    [item] = _draw(size=1)
    # the policies as a serving process keeps them (else their first read counts here,
    # or not, by which test ran before)
    policy_table(at=timezone.now())

    with django_assert_num_queries(GATE_ANNOTATE_QUERIES) as queries:
        annotation = review_item_annotate(item_id=item, text="intent: lights.on", caller=LINK)

    assert _recording_reads(queries) == 2  # the gate's one read, and the rule's re-check
    assert _recording_locks(queries) == 1
    assert (annotation.recording_id, annotation.category) == (recording.pk, "annotation")
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.DONE


def test_a_refused_access_still_rechecks_the_rule_and_reads_the_recording_once(
    django_assert_num_queries,
):
    recording = reviewable()
    [item] = _draw(size=1)
    Recording.objects.filter(pk=recording.pk).update(sensitive=True)

    with pytest.raises(ApplicationError) as refused, CaptureQueriesContext(connection) as queries:
        review_item_audio_open(item_id=item, caller=LINK)

    assert (refused.value.status_code, refused.value.code) == (410, "revoked")
    assert ReviewItem.objects.get(pk=item).close_reason == "sensitive"
    assert _recording_reads(queries) == 2
    assert _recording_locks(queries) == 1


# --- what a withdrawal revokes -------------------------------------------------------


def _items_by_purpose() -> tuple[Profile, dict[str, str]]:
    """A profile that granted both purposes, with one item drawn for model training and
    one for human review, and another profile's item for human review; the items' ids
    by name."""
    training_rec = reviewable(granted={HUMAN: True, TRAINING: True})
    profile = training_rec.profile
    [training] = _draw(size=10, purpose=TRAINING)
    human_rec = reviewable(profile=profile)
    other_rec = reviewable(granted={HUMAN: True, TRAINING: True})
    _draw(size=10)
    item_of = dict(ReviewItem.objects.values_list("recording_id", "pk"))
    assert item_of[training_rec.pk] == training
    return profile, {
        "training": training,
        "human": item_of[human_rec.pk],
        "other": item_of[other_rec.pk],
    }


def _withdraw(profile: Profile, purpose: str) -> None:
    consent_set(
        profile=profile,
        purpose=purpose,
        granted=False,
        channel="app",
        notice_version="v1",
        actor="t",
    )


def test_withdrawing_human_review_revokes_every_open_item_of_the_profile():
    # people hear every item, whatever purpose it was drawn for
    profile, ids = _items_by_purpose()

    _withdraw(profile, HUMAN)

    states = _states()
    assert states[ids["training"]] == ReviewItemState.REVOKED
    assert states[ids["human"]] == ReviewItemState.REVOKED
    assert states[ids["other"]] == ReviewItemState.PENDING
    entry = LedgerEntry.objects.filter(kind="review_items.revoked").latest("seq")
    assert entry.payload == {"purpose": HUMAN, "reason": "consent_withdrawn", "items": 2}


def test_withdrawing_model_training_revokes_only_the_profiles_items_drawn_for_it():
    profile, ids = _items_by_purpose()

    _withdraw(profile, TRAINING)

    states = _states()
    assert states[ids["training"]] == ReviewItemState.REVOKED
    assert states[ids["human"]] == ReviewItemState.PENDING
    assert states[ids["other"]] == ReviewItemState.PENDING
    assert ReviewItem.objects.get(pk=ids["training"]).close_reason == "consent_withdrawn"


def test_a_withdrawal_leaves_closed_items_as_they_are():
    profile, ids = _items_by_purpose()
    ReviewItem.objects.filter(pk=ids["human"]).update(state=ReviewItemState.DONE)

    _withdraw(profile, HUMAN)

    assert _states()[ids["human"]] == ReviewItemState.DONE


# --- an item is usable strictly before its expiry ------------------------------------


def test_an_item_is_refused_at_its_exact_expiry_instant():
    reviewable()
    [item] = _draw(size=1)
    expires_at = ReviewItem.objects.get(pk=item).expires_at

    with pytest.raises(ApplicationError) as refused:
        review_item_audio_open(item_id=item, caller=LINK, now=expires_at)

    assert (refused.value.status_code, refused.value.code) == (410, "expired")
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.EXPIRED
    assert LedgerEntry.objects.latest("seq").kind == "review_item.refused"


def test_an_item_is_usable_until_just_before_its_expiry():
    reviewable()
    [item] = _draw(size=1)
    expires_at = ReviewItem.objects.get(pk=item).expires_at

    review_item_audio_open(
        item_id=item, caller=LINK, now=expires_at - timedelta(microseconds=1)
    ).file.close()

    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.DELIVERED


def test_the_expiry_sweep_closes_an_item_at_its_exact_expiry_instant_not_before():
    reviewable()
    [item] = _draw(size=1)
    expires_at = ReviewItem.objects.get(pk=item).expires_at

    assert review_items_expire(now=expires_at - timedelta(microseconds=1)) == 0
    assert review_items_expire(now=expires_at) == 1
    assert ReviewItem.objects.get(pk=item).state == ReviewItemState.EXPIRED


# --- the draw ------------------------------------------------------------------------


def test_a_top_up_round_makes_up_for_what_the_recheck_dropped(monkeypatch):
    # given a first pick that the re-check drops (the clip was flagged after the pick)
    lost, kept = reviewable(), reviewable()
    Recording.objects.filter(pk=lost.pk).update(sensitive=True)
    queue = [[lost.pk], [kept.pk]]
    monkeypatch.setattr(services, "sample_pick", lambda **_: queue.pop(0) if queue else [])

    [item] = _draw(size=1)

    assert ReviewItem.objects.get(pk=item).recording == kept
    entry = LedgerEntry.objects.filter(kind="sample.drawn").latest("seq")
    assert (entry.payload["rounds"], entry.payload["dropped_at_recheck"]) == (2, 1)
    # the entry's one part names the item handed out in the top-up round, by the names
    # the round's lock read: its recording and its profile
    [part] = LedgerEntryPart.objects.filter(seq=entry.seq)
    assert part.profile == kept.profile.external_id
    body = json.loads(bytes(part.part))
    assert (body["profile"], body["items"]) == (
        kept.profile.external_id,
        [{"review_item": item, "recording": kept.external_id}],
    )


def test_a_draws_parts_name_each_profiles_items_and_recordings():
    first, second, other = reviewable(), reviewable(), reviewable()
    Recording.objects.filter(pk=second.pk).update(profile=first.profile)

    items = _draw(size=3)

    item_of = {
        recording: item
        for item, recording in ReviewItem.objects.filter(pk__in=items).values_list(
            "pk", "recording_id"
        )
    }

    def named(*recordings: Recording) -> list[dict[str, str]]:
        return [{"review_item": item_of[r.pk], "recording": r.external_id} for r in recordings]

    entry = LedgerEntry.objects.filter(kind="sample.drawn").latest("seq")
    parts = {
        p.profile: json.loads(bytes(p.part))["items"]
        for p in LedgerEntryPart.objects.filter(seq=entry.seq)
    }
    assert parts == {
        first.profile.external_id: named(first, second),
        other.profile.external_id: named(other),
    }


def test_a_draw_of_the_size_limit_is_accepted():
    reviewable()

    assert len(_draw(size=SAMPLE_SIZE_LIMIT)) == 1
    with pytest.raises(ApplicationError) as refused:
        _draw(size=SAMPLE_SIZE_LIMIT + 1)
    assert refused.value.code == "sample_too_large"


def test_a_withdrawal_with_nothing_to_revoke_records_no_revocation():
    recording = reviewable()

    _withdraw(recording.profile, HUMAN)

    assert not LedgerEntry.objects.filter(kind="review_items.revoked").exists()
    assert LedgerEntry.objects.latest("seq").kind == "consent.withdrawn"


def test_a_draw_over_an_empty_time_range_is_refused():
    reviewable()
    at = timezone.now()

    with pytest.raises(ApplicationError) as refused:
        _draw(size=1, recorded_from=at, recorded_to=at)

    assert (refused.value.status_code, refused.value.code) == (400, "validation_error")
    assert refused.value.fields == {
        "recorded_to": [FieldError("invalid", "Must be after recorded_from.")]
    }
    assert not ReviewItem.objects.exists()


def test_an_item_drawn_at_midnight_counts_to_that_days_quota():
    reviewer = ReviewerFactory(location="DE", daily_quota=1)
    reviewable(), reviewable()
    midnight = datetime(2026, 3, 1, tzinfo=UTC)
    _draw(size=1, reviewer=reviewer.user.username, now=midnight)

    with pytest.raises(ApplicationError) as refused:
        _draw(size=1, reviewer=reviewer.user.username, now=midnight + timedelta(hours=1))

    assert refused.value.code == "quota_exceeded"
    assert ReviewItem.objects.filter(reviewer=reviewer).count() == 1


def test_the_expiry_sweep_leaves_closed_items_past_their_expiry_as_they_are():
    for _ in range(2):
        reviewable()
    done, revoked = _draw(size=2)
    ReviewItem.objects.filter(pk=done).update(state=ReviewItemState.DONE)
    ReviewItem.objects.filter(pk=revoked).update(state=ReviewItemState.REVOKED)

    assert review_items_expire(now=timezone.now() + timedelta(days=1)) == 0

    assert _states() == {done: ReviewItemState.DONE, revoked: ReviewItemState.REVOKED}


def test_the_gate_judges_an_item_drawn_for_model_training_for_human_review_too():
    # people hear it: a clip flagged sensitive after the draw is refused, although
    # model training alone would not mind the flag
    recording = reviewable(granted={HUMAN: True, TRAINING: True})
    [item] = _draw(size=1, purpose=TRAINING)
    Recording.objects.filter(pk=recording.pk).update(sensitive=True)

    with pytest.raises(ApplicationError) as refused:
        review_item_audio_open(item_id=item, caller=LINK)

    assert (refused.value.status_code, refused.value.code) == (410, "revoked")
    assert ReviewItem.objects.get(pk=item).close_reason == "sensitive"


@pytest.mark.parametrize("action", ["audio", "annotate"])
def test_the_gate_refuses_an_item_whose_recording_has_no_playable_audio_left(action):
    # the rule itself does not mind a recording without audio; the gate does: there is
    # nothing to hear, and nothing heard to annotate
    recording = reviewable()
    [item] = _draw(size=1)
    Artefact.objects.filter(recording=recording, category="audio").update(storage_key="")

    with pytest.raises(ApplicationError) as refused:
        if action == "audio":
            review_item_audio_open(item_id=item, caller=LINK)
        else:
            review_item_annotate(item_id=item, text="intent: lights.on", caller=LINK)

    assert (refused.value.status_code, refused.value.code) == (410, "revoked")
    assert ReviewItem.objects.get(pk=item).close_reason == "no_audio"
    assert not Artefact.objects.filter(recording=recording, category="annotation").exists()
