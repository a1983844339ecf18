"""Reads for the pages: what a person sees of their own profiles and recordings, and the
figures of the officers' dashboard. Writes go through the owning apps' services."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import (
    Avg,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    Max,
    Min,
    Prefetch,
    Q,
    QuerySet,
)
from django.db.models.functions import TruncDate
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentDefault, ConsentEvent, Purpose
from compliance.consent.selectors import CurrentConsent, consent_current
from compliance.core.errors import NotFound
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import (
    Artefact,
    ArtefactState,
    Category,
    Recording,
    RecordingState,
)
from compliance.retention.models import DeletionRequest, DeletionStatus
from compliance.retention.selectors import CHOICE_DAYS, policy_table
from compliance.sampling.models import ReviewItem, ReviewItemState

RECORDINGS_PER_PAGE = 25
LEDGER_PER_PAGE = 50
DASHBOARD_DAYS = 30
# Lines in one consent chart; the rest of the jurisdictions are in the table and CSV.
CONSENT_CHART_JURISDICTIONS = 6
LAG_REASONS = ["retention_policy", "user_choice", "dont_save"]


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


def profile_of_user(*, user: Any, external_id: str) -> Profile:
    """The profile if it belongs to `user`'s account; otherwise it does not exist."""
    profile = (
        Profile.objects.select_related("account")
        .filter(external_id=external_id, account__user=user, account__user__isnull=False)
        .first()
    )
    if profile is None or not user.is_authenticated:
        raise NotFound("Profile")
    return profile


def _policy_limits(profile: Profile, now: datetime) -> list[PolicyLimit]:
    table = policy_table(at=now)
    limits = []
    for category in (Category.AUDIO, Category.TRANSCRIPT):
        policy = table.resolve(
            country=profile.account.jurisdiction, category=category, is_child=profile.is_child
        )
        if policy is not None:
            limits.append(PolicyLimit(category, policy.retention_days))
    return limits


def privacy_overview(*, user: Any) -> list[ProfileOverview]:
    """The user's profiles (adults first, then children), with consent and counts."""
    if not user.is_authenticated:
        return []
    profiles = list(
        Profile.objects.filter(account__user=user)
        .select_related("account")
        .annotate(
            active_recordings=Count("recordings", filter=Q(recordings__state=RecordingState.ACTIVE))
        )
        .order_by("is_child", "external_id")
    )
    now = timezone.now()
    return [
        ProfileOverview(
            profile=p,
            consents=consent_current(profile=p),
            recordings=p.active_recordings,
            policy_limits=_policy_limits(p, now),
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
    request = (
        DeletionRequest.objects.select_related("profile__account")
        .filter(public_id=public_id, profile__account__user=user)
        .first()
    )
    if request is None or not user.is_authenticated:
        raise NotFound("Deletion request")
    return request


def deletion_requests_of_profile(*, profile: Profile, limit: int = 5) -> list[DeletionRequest]:
    return list(DeletionRequest.objects.filter(profile=profile).order_by("-created_at")[:limit])


# --- the officers' dashboard ----------------------------------------------------------


def days_ending(now: datetime, days: int = DASHBOARD_DAYS) -> list[datetime]:
    """The last `days` calendar days (UTC) up to today, as dates at midnight."""
    today = now.date()
    return [
        datetime.combine(today - timedelta(days=days - 1 - i), time(), tzinfo=now.tzinfo)
        for i in range(days)
    ]


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
            purge_reason__in=LAG_REASONS,
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
    return [(d.date().isoformat(), counts.get(d.date().isoformat(), 0)) for d in days_ending(now)]


@dataclass(frozen=True)
class ConsentRates:
    days: list[str]
    # (jurisdiction, purpose) -> per day (profiles, granted)
    series: dict[tuple[str, str], list[tuple[int, int]]]

    def rate(self, key: tuple[str, str], index: int) -> float | None:
        profiles, granted = self.series[key][index]
        return 100.0 * granted / profiles if profiles else None

    def jurisdictions(self) -> list[str]:
        """Jurisdictions by their number of profiles today, largest first."""
        sizes: dict[str, int] = defaultdict(int)
        for (jurisdiction, _), points in self.series.items():
            sizes[jurisdiction] = max(sizes[jurisdiction], points[-1][0] if points else 0)
        return sorted(sizes, key=lambda j: (-sizes[j], j))


def consent_rates_over_time(*, now: datetime, days: int = DASHBOARD_DAYS) -> ConsentRates:
    """The share of profiles holding a grant, per jurisdiction and purpose, at the end of
    each of the last `days` days.

    Replays the consent events in time order over the profiles as they were created: a
    profile without an event counts as the jurisdiction's default says (today's
    defaults: earlier ones are only in the ledger), or as not granted. Children never
    count for human review, which they can never be granted.
    """
    ends = [d + timedelta(days=1) for d in days_ending(now, days)]
    ends[-1] = now
    defaults = {
        (j, p): g
        for j, p, g in ConsentDefault.objects.values_list("jurisdiction", "purpose", "granted")
    }
    profiles = list(
        Profile.objects.filter(created_at__lte=now)
        .order_by("created_at", "id")
        .values_list("id", "account__jurisdiction", "is_child", "created_at")
    )
    events = (
        ConsentEvent.objects.filter(created_at__lte=now)
        .order_by("created_at", "id")
        .values_list("profile_id", "purpose", "granted", "created_at")
        .iterator(chunk_size=5000)
    )
    jurisdiction_of: dict[int, str] = {}
    child: set[int] = set()
    state: dict[tuple[int, str], bool] = {}
    totals: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    series: dict[tuple[str, str], list[tuple[int, int]]] = defaultdict(list)
    counts_for = (Purpose.HUMAN_REVIEW, Purpose.MODEL_TRAINING)

    def counts(profile_id: int, purpose: str) -> bool:
        return not (purpose == Purpose.HUMAN_REVIEW and profile_id in child)

    def add_profile(pid: int, jurisdiction: str, is_child: bool) -> None:
        jurisdiction_of[pid] = jurisdiction
        if is_child:
            child.add(pid)
        for purpose in counts_for:
            if counts(pid, purpose):
                total = totals[(jurisdiction, purpose)]
                total[0] += 1
                total[1] += 1 if defaults.get((jurisdiction, purpose)) else 0

    def apply_event(pid: int, purpose: str, granted: bool) -> None:
        jurisdiction = jurisdiction_of.get(pid)
        if jurisdiction is None or not counts(pid, purpose):
            return
        before = state.get((pid, purpose), bool(defaults.get((jurisdiction, purpose))))
        state[(pid, purpose)] = granted
        totals[(jurisdiction, purpose)][1] += int(granted) - int(before)

    profile_at = 0
    pending = next(events, None)
    for index, end in enumerate(ends):
        while profile_at < len(profiles) and profiles[profile_at][3] < end:
            pid, jurisdiction, is_child, _ = profiles[profile_at]
            add_profile(pid, jurisdiction, is_child)
            profile_at += 1
        while pending is not None and pending[3] < end:
            apply_event(pending[0], pending[1], pending[2])
            pending = next(events, None)
        for key, (n, granted) in totals.items():
            points = series[key]
            points.extend([(0, 0)] * (index - len(points)))
            points.append((n, granted))
    labels = [d.date().isoformat() for d in days_ending(now, days)]
    for points in series.values():
        points.extend([(0, 0)] * (len(labels) - len(points)))
    return ConsentRates(days=labels, series=dict(series))


@dataclass(frozen=True)
class ReviewsAtLocation:
    location: str
    selected: int
    heard: int
    annotated: int
    revoked: int
    cross_border: int  # heard by a reviewer outside the recording's jurisdiction


def reviews_by_location(*, now: datetime, days: int = DASHBOARD_DAYS) -> list[ReviewsAtLocation]:
    """Review items drawn in the last `days` days, by where their reviewer sits."""
    heard = Q(delivered_at__isnull=False)
    rows = (
        ReviewItem.objects.filter(created_at__gte=days_ending(now, days)[0])
        .values("reviewer_location")
        .annotate(
            selected=Count("pk"),
            heard=Count("pk", filter=heard),
            annotated=Count("pk", filter=Q(state=ReviewItemState.DONE)),
            revoked=Count("pk", filter=Q(state=ReviewItemState.REVOKED)),
            cross_border=Count(
                "pk",
                filter=heard & ~Q(reviewer_location=F("recording__profile__account__jurisdiction")),
            ),
        )
        .order_by("-heard", "reviewer_location")
    )
    return [
        ReviewsAtLocation(
            r["reviewer_location"],
            r["selected"],
            r["heard"],
            r["annotated"],
            r["revoked"],
            r["cross_border"],
        )
        for r in rows
    ]


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


def account_by_external_id(*, external_id: str) -> Account:
    account = Account.objects.filter(external_id=external_id).first()
    if account is None:
        raise NotFound("Account")
    return account


def ledger_entries(*, page: Any, kind: str = "") -> Page:
    entries = LedgerEntry.objects.order_by("-seq")
    if kind:
        entries = entries.filter(kind=kind)
    return Paginator(entries, LEDGER_PER_PAGE).get_page(page)


def ledger_kinds() -> list[str]:
    return list(LedgerEntry.objects.order_by("kind").values_list("kind", flat=True).distinct())
