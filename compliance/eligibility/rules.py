"""The eligibility rule — the one place it lives (DESIGN.md, "The eligibility rule").

Recording R may be used for purpose P (by a reviewer at location L) now iff: R is
active; none of the artefacts P needs is past its effective retention; for
human_review, R's profile is not a child's and R is flagged neither sensitive nor
false wake; R's profile holds a current grant for P (explicit, or the jurisdiction's
default); and, for human_review with L given, L is R's jurisdiction or a transfer rule
allows L for it.

It exists twice, and tests prove on generated data that the two agree:
- `decide()`: the decision for one recording, with a reason code per failed
  condition, from facts that `facts_for()` reads in one query;
- `eligible_recordings()`: the same rule as a database filter, for many recordings
  (sampling, reports).

Decisions always read the primary database; nothing here is cached.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from functools import lru_cache

from django.db import connection
from django.db.backends.utils import CursorWrapper
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentDefault, ConsentState, Purpose
from compliance.recordings.models import (
    Artefact,
    ArtefactState,
    Category,
    Recording,
    RecordingState,
)
from compliance.transfers.models import TransferRule

# The artefacts each purpose uses: people listen to the audio; training pairs the
# audio with its transcript. If one of them is past its retention, the purpose fails.
PURPOSE_NEEDS: dict[str, tuple[str, ...]] = {
    Purpose.HUMAN_REVIEW: (Category.AUDIO,),
    Purpose.MODEL_TRAINING: (Category.AUDIO, Category.TRANSCRIPT),
}


class Reason(StrEnum):
    PURGED = "purged"
    RETENTION_EXPIRED = "retention_expired"
    CHILD_PROFILE = "child_profile"
    SENSITIVE = "sensitive"
    FALSE_WAKE = "false_wake"
    NO_CONSENT = "no_consent"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    TRANSFER_NOT_ALLOWED = "transfer_not_allowed"


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rule needs to know about one recording."""

    external_id: str
    active: bool
    sensitive: bool
    false_wake: bool
    is_child: bool
    jurisdiction: str | None
    consent: bool | None  # the profile's explicit state; None: no event yet
    consent_default: bool | None  # the jurisdiction's default; None: none set
    transfer_rule: bool  # a rule allows the asked reviewer location for this jurisdiction
    retention_expired: bool = False


def decide(facts: Facts, *, purpose: str, reviewer_location: str | None = None) -> list[str]:
    """The reasons `facts`' recording may not be used for `purpose`; empty if it may."""
    if not facts.active:
        # A tombstone holds nothing to use and no profile to judge.
        return [Reason.PURGED]
    reasons: list[str] = []
    if facts.retention_expired:
        reasons.append(Reason.RETENTION_EXPIRED)
    human = purpose == Purpose.HUMAN_REVIEW
    if human:
        if facts.is_child:
            reasons.append(Reason.CHILD_PROFILE)
        if facts.sensitive:
            reasons.append(Reason.SENSITIVE)
        if facts.false_wake:
            reasons.append(Reason.FALSE_WAKE)
    if facts.consent is None:
        if facts.consent_default is not True:
            reasons.append(Reason.NO_CONSENT)
    elif facts.consent is False:
        reasons.append(Reason.CONSENT_WITHDRAWN)
    if (
        human
        and reviewer_location is not None
        and reviewer_location != facts.jurisdiction
        and not facts.transfer_rule
    ):
        reasons.append(Reason.TRANSFER_NOT_ALLOWED)
    return reasons


@lru_cache(maxsize=64)
def _facts_sql(count: int, with_location: bool, needs: int) -> str:
    """One query for the facts of many recordings.

    Hand-written SQL because this is the hot path: the ORM's query compilation and
    model machinery cost more than PostgreSQL's 90 µs (PERFORMANCE.md). The conditions
    themselves stay in `decide()`.
    """
    recording = Recording._meta.db_table
    profile = Profile._meta.db_table
    account = Account._meta.db_table
    state = ConsentState._meta.db_table
    default = ConsentDefault._meta.db_table
    rule = TransferRule._meta.db_table
    artefact = Artefact._meta.db_table
    if connection.vendor == "postgresql":
        ids = "= ANY(%s::varchar[])"
    else:
        ids = "IN (" + ",".join(["%s"] * count) + ")"
    # Only table names (from model metadata) are interpolated; every value is a parameter.
    transfer = (
        f"EXISTS (SELECT 1 FROM {rule} t WHERE t.jurisdiction = a.jurisdiction"  # noqa: S608
        " AND t.reviewer_location = %s)"
        if with_location
        else "FALSE"
    )
    expired = (
        f"EXISTS (SELECT 1 FROM {artefact} x WHERE x.recording_id = r.id"  # noqa: S608
        f" AND x.category IN ({','.join(['%s'] * needs)})"
        " AND (x.state <> %s OR x.expires_at <= %s))"
    )
    return (
        f"SELECT r.external_id, r.state, r.sensitive, r.false_wake, p.is_child,"  # noqa: S608
        f" a.jurisdiction, cs.granted, cd.granted, {transfer}, {expired}"
        f" FROM {recording} r"
        f" LEFT JOIN {profile} p ON p.id = r.profile_id"
        f" LEFT JOIN {account} a ON a.id = p.account_id"
        f" LEFT JOIN {state} cs ON cs.profile_id = r.profile_id AND cs.purpose = %s"
        f" LEFT JOIN {default} cd ON cd.jurisdiction = a.jurisdiction AND cd.purpose = %s"
        f" WHERE r.external_id {ids}"
    )


# Ids per query: large enough to amortise the round trip, small enough that the
# plan stays on the indexes and a batch's rows never sit in memory all at once.
FACTS_CHUNK = 1000


def _facts_cursor() -> CursorWrapper:
    """A cursor for the facts query.

    On PostgreSQL it binds on the server (Django's own cursors bind on the client), so
    psycopg prepares the statement once per connection (`prepare_threshold` in the
    database OPTIONS) and PostgreSQL stops planning it on every call: planning costs
    about three times the query's execution here (bench/eligibility.py). It is wrapped
    as Django wraps its cursors, so it is logged and counted like any other.
    """
    if connection.vendor != "postgresql":
        return connection.cursor()
    import psycopg

    connection.ensure_connection()
    return connection._prepare_cursor(psycopg.Cursor(connection.connection))


def facts_for(
    external_ids: Sequence[str],
    *,
    purpose: str,
    reviewer_location: str | None = None,
    now: datetime | None = None,
) -> dict[str, Facts]:
    """The facts of every listed recording that exists, by external id, in one query
    per FACTS_CHUNK ids."""
    if not external_ids:
        return {}
    needs = PURPOSE_NEEDS[purpose]
    at = connection.ops.adapt_datetimefield_value(now or timezone.now())
    head: list[object] = []
    if reviewer_location is not None:
        head.append(reviewer_location)
    head += [*needs, ArtefactState.ACTIVE, at, purpose, purpose]
    postgresql = connection.vendor == "postgresql"
    active = RecordingState.ACTIVE
    facts: dict[str, Facts] = {}
    with _facts_cursor() as cursor:
        for start in range(0, len(external_ids), FACTS_CHUNK):
            chunk = list(external_ids[start : start + FACTS_CHUNK])
            sql = _facts_sql(len(chunk), reviewer_location is not None, len(needs))
            cursor.execute(sql, [*head, chunk] if postgresql else [*head, *chunk])
            for row in cursor.fetchall():
                facts[row[0]] = Facts(
                    external_id=row[0],
                    active=row[1] == active,
                    sensitive=bool(row[2]),
                    false_wake=bool(row[3]),
                    is_child=bool(row[4]),
                    jurisdiction=row[5],
                    consent=None if row[6] is None else bool(row[6]),
                    consent_default=None if row[7] is None else bool(row[7]),
                    transfer_rule=bool(row[8]),
                    retention_expired=bool(row[9]),
                )
    return facts


def eligible_recordings(
    *, purpose: str, reviewer_location: str | None = None, now: datetime | None = None
) -> QuerySet[Recording]:
    """The rule as a filter: every recording that may be used for `purpose` now.

    `now` is passed in, never read from the database's clock, so that tests can move
    time (the retention condition compares against it).
    """
    now = now or timezone.now()
    expired = Artefact.objects.filter(
        Q(recording=OuterRef("pk"), category__in=PURPOSE_NEEDS[purpose])
        & (~Q(state=ArtefactState.ACTIVE) | Q(expires_at__lte=now))
    )
    jurisdiction = OuterRef("profile__account__jurisdiction")
    states = ConsentState.objects.filter(profile=OuterRef("profile"), purpose=purpose)
    defaults = ConsentDefault.objects.filter(
        jurisdiction=jurisdiction, purpose=purpose, granted=True
    )
    consented = Q(Exists(states.filter(granted=True))) | (
        ~Q(Exists(states.filter(granted__isnull=False))) & Q(Exists(defaults))
    )
    recordings = Recording.objects.filter(
        consented, ~Exists(expired), state=RecordingState.ACTIVE, profile__isnull=False
    )
    if purpose == Purpose.HUMAN_REVIEW:
        recordings = recordings.filter(profile__is_child=False, sensitive=False, false_wake=False)
        if reviewer_location is not None:
            rules = TransferRule.objects.filter(
                jurisdiction=jurisdiction, reviewer_location=reviewer_location
            )
            recordings = recordings.filter(
                Q(profile__account__jurisdiction=reviewer_location) | Q(Exists(rules))
            )
    return recordings
