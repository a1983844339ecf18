"""Reads for the pages: what a person sees of their own profiles and recordings, and the
figures of the officers' dashboard. Writes go through the owning apps' services."""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db import connection
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    Max,
    Min,
    OuterRef,
    Prefetch,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.accounts.selectors import profile_for_caller

# The consent analytics (and the review analytics, from compliance.sampling.reports
# below) belong to the apps that own the data, since the API's consent report reads
# them too; the dashboard's callers still find them here under their old names.
from compliance.consent.reports import ConsentRates as ConsentRates
from compliance.consent.reports import consent_rates_over_time as consent_rates_over_time
from compliance.consent.selectors import CurrentConsent, consent_current_many
from compliance.core.errors import NotFound
from compliance.core.periods import days_ending
from compliance.edge.callers import caller_of
from compliance.ledger.models import LedgerEntry, LedgerEntryPart
from compliance.recordings.models import (
    Artefact,
    ArtefactState,
    Category,
    Recording,
    RecordingState,
)
from compliance.retention.models import DeletionRequest, DeletionStatus
from compliance.retention.reasons import EXPIRY_REASONS
from compliance.retention.selectors import (
    CHOICE_DAYS,
    PolicyTable,
    deletion_request_for_caller,
    policy_table,
)
from compliance.sampling.models import ReviewItem, ReviewItemState
from compliance.sampling.reports import ReviewsAtLocation as ReviewsAtLocation
from compliance.sampling.reports import reviews_by_location as reviews_by_location

from .wording import (
    LedgerDetail,
    actor_names,
    ledger_details,
    ledger_kind_label,
    payload_references,
    subject_names,
)

RECORDINGS_PER_PAGE = 25
LEDGER_PER_PAGE = 50
DASHBOARD_DAYS = 30
# Lines in one consent chart; the rest of the jurisdictions are in the table and CSV.
CONSENT_CHART_JURISDICTIONS = 6


# --- the privacy page -----------------------------------------------------------------


@dataclass(frozen=True)
class PolicyLimit:
    category: str
    days: int


@dataclass(frozen=True)
class ProfileOverview:
    profile: Profile
    consents: list[CurrentConsent]
    recordings: int
    policy_limits: list[PolicyLimit]
    purged: bool = False  # a retention purge deleted some of its recordings: receipts exist


def profile_of_user(*, user: Any, external_id: str) -> Profile:
    """The profile if it belongs to `user`'s account; otherwise it does not exist."""
    return profile_for_caller(
        caller=caller_of(user).as_end_user(), external_id=external_id, scope="consents:read"
    )


def _policy_limits(profile: Profile, table: PolicyTable) -> list[PolicyLimit]:
    limits = []
    for category in (Category.AUDIO, Category.TRANSCRIPT):
        policy = table.resolve(
            country=profile.account.jurisdiction, category=category, is_child=profile.is_child
        )
        if policy is not None:
            limits.append(PolicyLimit(category, policy.retention_days))
    return limits


def privacy_overview(*, user: Any) -> list[ProfileOverview]:
    """The user's profiles (adults first, then children), with consent and counts: four
    queries however many profiles the account has."""
    if not user.is_authenticated:
        return []
    profiles = list(
        Profile.objects.filter(account__user=user)
        .select_related("account")
        .annotate(
            active_recordings=Count(
                "recordings", filter=Q(recordings__state=RecordingState.ACTIVE)
            ),
            purged=Exists(
                LedgerEntryPart.objects.filter(profile=OuterRef("external_id")).filter(
                    Exists(LedgerEntry.objects.filter(seq=OuterRef("seq"), kind="purge.batch"))
                )
            ),
        )
        .order_by("is_child", "external_id")
    )
    if not profiles:
        return []
    consents = consent_current_many(profiles=profiles)
    table = policy_table(at=timezone.now())
    return [
        ProfileOverview(
            profile=p,
            consents=consents[p.pk],
            recordings=p.active_recordings,
            policy_limits=_policy_limits(p, table),
            purged=p.purged,
        )
        for p in profiles
    ]


@dataclass(frozen=True)
class ReviewStatus:
    """What a person did with a recording: selected, heard, annotated — and when."""

    selected_at: datetime | None = None
    heard_at: datetime | None = None
    annotated_at: datetime | None = None
    reviewer_location: str = ""

    @property
    def reviewed(self) -> bool:
        return self.heard_at is not None or self.annotated_at is not None


NOT_REVIEWED = ReviewStatus()


def review_status_for(*, recording_ids: Iterable[int]) -> dict[int, ReviewStatus]:
    """Per recording: when it was first selected for review, first heard by a reviewer
    (its audio delivered), and annotated. Recordings absent from the answer were never
    selected."""
    ids = list(recording_ids)
    if not ids:
        return {}
    statuses: dict[int, ReviewStatus] = {}
    rows = ReviewItem.objects.filter(recording_id__in=ids).values_list(
        "recording_id", "created_at", "delivered_at", "state", "closed_at", "reviewer_location"
    )
    for rid, created, delivered, state, closed, location in rows:
        status = statuses.get(rid, NOT_REVIEWED)
        annotated = closed if state == ReviewItemState.DONE else None
        statuses[rid] = ReviewStatus(
            selected_at=_earliest(status.selected_at, created),
            heard_at=_earliest(status.heard_at, delivered),
            annotated_at=_earliest(status.annotated_at, annotated),
            reviewer_location=status.reviewer_location or (location if delivered else ""),
        )
    return statuses


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)


@dataclass(frozen=True)
class RecordingRow:
    recording: Recording
    transcript: str | None
    has_audio: bool
    expires_at: datetime | None
    review: ReviewStatus


def recordings_page(*, profile: Profile, page: Any) -> tuple[Page, list[RecordingRow]]:
    """The profile's active recordings, newest first, one page of them."""
    recordings = (
        Recording.objects.filter(profile=profile, state=RecordingState.ACTIVE)
        .prefetch_related(
            Prefetch(
                "artefacts",
                queryset=Artefact.objects.filter(state=ArtefactState.ACTIVE).only(
                    "id", "recording_id", "category", "text", "expires_at", "state"
                ),
            )
        )
        .order_by("-recorded_at", "-id")
    )
    paginated = Paginator(recordings, RECORDINGS_PER_PAGE).get_page(page)
    items = list(paginated.object_list)
    reviews = review_status_for(recording_ids=[r.pk for r in items])
    rows = []
    for recording in items:
        artefacts = list(recording.artefacts.all())
        transcript = next((a.text for a in artefacts if a.category == Category.TRANSCRIPT), None)
        expiries = [a.expires_at for a in artefacts if a.expires_at is not None]
        rows.append(
            RecordingRow(
                recording=recording,
                transcript=transcript,
                has_audio=any(a.category == Category.AUDIO for a in artefacts),
                expires_at=min(expiries) if expiries else None,
                review=reviews.get(recording.pk, NOT_REVIEWED),
            )
        )
    return paginated, rows


def recording_of_profile(*, profile: Profile, external_id: str) -> Recording:
    recording = Recording.objects.filter(
        profile=profile, external_id=external_id, state=RecordingState.ACTIVE
    ).first()
    if recording is None:
        raise NotFound("Recording")
    return recording


def recordings_in_range(
    *, profile: Profile, recorded_from: datetime | None, recorded_to: datetime | None
) -> QuerySet[Recording]:
    """The active recordings a deletion request with this range would take (the same
    bounds as the retention app's deletion scope: both inclusive)."""
    recordings = Recording.objects.filter(profile=profile, state=RecordingState.ACTIVE)
    if recorded_from is not None:
        recordings = recordings.filter(recorded_at__gte=recorded_from)
    if recorded_to is not None:
        recordings = recordings.filter(recorded_at__lte=recorded_to)
    return recordings


def recordings_a_choice_would_delete(*, profile: Profile, choice: str, now: datetime) -> int:
    """How many of the profile's active recordings a new retention choice makes due at
    once (the policy may already limit them; that is no news to the user)."""
    days = CHOICE_DAYS.get(choice)
    if days is None:
        return 0
    recordings = Recording.objects.filter(profile=profile, state=RecordingState.ACTIVE)
    if days:
        recordings = recordings.filter(recorded_at__lte=now - timedelta(days=days))
    return recordings.count()


def deletion_request_of_user(*, user: Any, public_id: str) -> DeletionRequest:
    return deletion_request_for_caller(
        caller=caller_of(user).as_end_user(), public_id=public_id, scope="deletions:write"
    )


def deletion_requests_of_profile(*, profile: Profile, limit: int = 5) -> list[DeletionRequest]:
    return list(DeletionRequest.objects.filter(profile=profile).order_by("-created_at")[:limit])


# --- the officers' dashboard ----------------------------------------------------------


@dataclass(frozen=True)
class LagDay:
    day: str
    purged: int
    max_seconds: float | None
    avg_seconds: float | None


def purge_lag_by_day(*, now: datetime, days: int = DASHBOARD_DAYS) -> list[LagDay]:
    """Per day: how long after their expiry artefacts purged that day were purged.

    Only retention purges count (a deletion request has no expiry to be late for).
    """
    start = days_ending(now, days)[0]
    lag = ExpressionWrapper(F("purged_at") - F("expires_at"), output_field=DurationField())
    rows = {
        row["day"]: row
        for row in Artefact.objects.filter(
            state=ArtefactState.PURGED,
            purged_at__gte=start,
            expires_at__isnull=False,
            purge_reason__in=EXPIRY_REASONS,
        )
        .annotate(day=TruncDate("purged_at"), lag=lag)
        .values("day")
        .annotate(n=Count("id"), worst=Max("lag"), mean=Avg("lag"))
        .order_by("day")
    }
    result = []
    for day in days_ending(now, days):
        row = rows.get(day.date())
        result.append(
            LagDay(
                day=day.date().isoformat(),
                purged=row["n"] if row else 0,
                max_seconds=_seconds(row["worst"]) if row else None,
                avg_seconds=_seconds(row["mean"]) if row else None,
            )
        )
    return result


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return max(0.0, value.total_seconds())
    return max(0.0, float(value) / 1_000_000)  # a backend that averages microseconds


def purges_by_day(*, report: dict[str, Any], now: datetime) -> list[tuple[str, int]]:
    counts = {row["date"]: row["artefacts"] for row in report["purges_per_day"]}
    days = [d.date().isoformat() for d in days_ending(now, DASHBOARD_DAYS)]
    return [(day, counts.get(day, 0)) for day in days]


def deletion_requests_open() -> list[DeletionRequest]:
    return list(
        DeletionRequest.objects.exclude(status=DeletionStatus.DONE)
        .select_related("profile")
        .order_by("created_at")[:100]
    )


def oldest_overdue_by_category(*, now: datetime) -> dict[str, datetime]:
    from compliance.retention.purge import due_artefacts

    return dict(
        Artefact.objects.filter(due_artefacts(now))
        .values_list("category")
        .annotate(oldest=Min("expires_at"))
        .order_by()
    )


HOLD_SEARCH_LIMIT = 20


@dataclass(frozen=True)
class HoldTargets:
    """What an officer's search for an account or a profile found, for the hold form."""

    query: str
    accounts: list[Account]
    profiles: list[Profile]

    @property
    def truncated(self) -> bool:
        return HOLD_SEARCH_LIMIT in (len(self.accounts), len(self.profiles))


def hold_targets_search(*, query: str) -> HoldTargets:
    """Accounts and profiles whose external id, or whose owner's email or username,
    contains `query` (any case): an officer rarely knows the id a hold asks for, but
    knows the person's email from the request in front of them. At most
    HOLD_SEARCH_LIMIT of each."""
    query = query.strip()
    if not query:
        return HoldTargets(query="", accounts=[], profiles=[])
    people = Q(user__email__icontains=query) | Q(user__username__icontains=query)
    accounts = list(
        Account.objects.filter(Q(external_id__icontains=query) | people)
        .select_related("user")
        .order_by("external_id")[:HOLD_SEARCH_LIMIT]
    )
    owners = (
        Q(account__external_id__icontains=query)
        | Q(account__user__email__icontains=query)
        | Q(account__user__username__icontains=query)
    )
    profiles = list(
        Profile.objects.filter(Q(external_id__icontains=query) | owners)
        .select_related("account__user")
        .order_by("external_id")[:HOLD_SEARCH_LIMIT]
    )
    return HoldTargets(query=query, accounts=accounts, profiles=profiles)


def account_by_external_id(*, external_id: str) -> Account:
    account = Account.objects.filter(external_id=external_id).first()
    if account is None:
        raise NotFound("Account")
    return account


@dataclass(frozen=True)
class LedgerRow:
    """One ledger entry as the ledger page shows it.

    The payload arrives as `LedgerDetail`s built here, never as the dict itself: a
    template's `payload.items` finds a payload key named `items` (every revocation has
    one) before the dict's method, and the same goes for `keys`, `values` and `get`.
    The texts are plain strings, so the template escapes whatever an entry recorded.
    """

    seq: int
    created_at: datetime
    kind: str
    subject: str
    actor: str
    hash: str
    details: list[LedgerDetail]
    label: str | None = None  # what the kind records, in words; None for an unknown kind
    actor_name: str = ""  # the actor as the page names it (a username, not user:12)
    subject_name: str = ""  # the subject as the page names it (a profile's name)


def ledger_row(entry: LedgerEntry, names: Mapping[str, str] | None = None) -> LedgerRow:
    """An entry as the page shows it; `names` names the ids its payload holds."""
    return LedgerRow(
        seq=entry.seq,
        created_at=entry.created_at,
        kind=entry.kind,
        subject=entry.subject,
        actor=entry.actor,
        hash=entry.hash,
        details=ledger_details(entry.payload, names),
        label=ledger_kind_label(entry.kind),
    )


def ledger_entries(*, page: Any, kind: str = "") -> Page:
    """A page of the ledger, newest first, its entries as `LedgerRow`s."""
    entries = LedgerEntry.objects.order_by("-seq")
    if kind:
        entries = entries.filter(kind=kind)
    # Any: the page is handed out with its entries replaced by `LedgerRow`s.
    shown: Page[Any] = Paginator(entries, LEDGER_PER_PAGE).get_page(page)
    entries_shown = list(shown.object_list)
    names = actor_names(entry.actor for entry in entries_shown)  # one query for the users
    # one query per kind of subject named on the page, in the subjects and the payloads
    subjects = subject_names(
        {entry.subject for entry in entries_shown}.union(
            *(payload_references(entry.payload) for entry in entries_shown)
        )
    )
    rows = [ledger_row(entry, subjects) for entry in entries_shown]
    shown.object_list = [
        replace(row, actor_name=names[row.actor], subject_name=subjects[row.subject])
        for row in rows
    ]
    return shown


def ledger_kinds() -> list[str]:
    """The kinds of entry in the ledger, for the page's filter, in code order.

    A few dozen kinds over millions of entries: rather than a DISTINCT over the whole
    table, hop from each kind to the next through the (kind, seq) index, a probe per
    kind. SQL, as the ORM has no recursive query.
    """
    table = connection.ops.quote_name(LedgerEntry._meta.db_table)
    sql = (
        "WITH RECURSIVE kinds(kind) AS ("  # noqa: S608 - our own table name, no values
        f" SELECT MIN(kind) FROM {table}"
        f" UNION ALL SELECT (SELECT MIN(kind) FROM {table} WHERE kind > kinds.kind)"
        " FROM kinds WHERE kinds.kind IS NOT NULL"
        ") SELECT kind FROM kinds WHERE kind IS NOT NULL"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql)
        return [kind for (kind,) in cursor.fetchall()]


def page_language_of(*, user: Any) -> str | None:
    """The language a person saved for the pages, if any."""
    from .models import PagePreference

    return PagePreference.objects.filter(user_id=user.pk).values_list("language", flat=True).first()
