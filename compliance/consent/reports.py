"""Consent analytics: how many voice profiles allow each purpose, per jurisdiction, day
by day. Read by the consent report of the API and by the officers' dashboard, so that
both show the same figures."""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.db.models import (
    Count,
    DateField,
    F,
    IntegerField,
    OuterRef,
    Subquery,
    Value,
    Window,
)
from django.db.models.functions import Cast, Coalesce, Greatest, Lag, TruncDate

from compliance.accounts.models import Profile
from compliance.core.periods import days_ending

from .models import ConsentDefault, ConsentEvent, Purpose

DEFAULT_DAYS = 30


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


def consent_rates_over_time(*, now: datetime, days: int = DEFAULT_DAYS) -> ConsentRates:
    """The share of profiles holding a grant, per jurisdiction and purpose, at the end of
    each of the last `days` days (the last one ends now).

    A profile counts from its creation, as its latest event before the day's end says,
    or without one as the jurisdiction's default says (today's defaults: earlier ones
    are only in the ledger), or as not granted. Children never count for human review,
    which they can never be granted.

    The database sums it up per day, and the running totals of that are the figures:
    the profiles created each day with their answers at the end of the first day (one
    index probe each, not the history before it), and each later day's net change in
    grants, where an event changes its answer minus the answer before it.
    """
    day_starts = days_ending(now, days)
    first = day_starts[0].date()
    first_end = min(day_starts[0] + timedelta(days=1), now)
    index = {d.date(): i for i, d in enumerate(day_starts)}
    defaults = {
        (j, p): int(g)
        for j, p, g in ConsentDefault.objects.values_list("jurisdiction", "purpose", "granted")
    }
    counted: tuple[str, ...] = (Purpose.HUMAN_REVIEW, Purpose.MODEL_TRAINING)
    new_profiles: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * days)
    granted_change: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * days)

    answers = {
        f"answer_{purpose}": _last_answer(
            profile=OuterRef("pk"), purpose=Value(purpose), before=first_end
        )
        for purpose in counted
    }
    created = (
        Profile.objects.filter(created_at__lt=now)
        .annotate(day=_charted_day("created_at", now=now, first=first), **answers)
        .values_list("account__jurisdiction", "is_child", "day", *answers)
        .annotate(n=Count("id"))
        .order_by()
    )
    for jurisdiction, is_child, day, *answered, n in created:
        for purpose, answer in zip(counted, answered, strict=True):
            if purpose == Purpose.HUMAN_REVIEW and is_child:
                continue
            key = (jurisdiction, purpose)
            new_profiles[key][index[_as_date(day)]] += n
            granted = defaults.get(key, 0) if answer is None else int(answer)
            granted_change[key][index[_as_date(day)]] += n * granted

    for jurisdiction, purpose, day, change, firsts, first_grants in _consent_changes_per_day(
        now=now, since=first_end, first=first, purposes=counted
    ):
        key = (jurisdiction, purpose)
        granted_change[key][index[_as_date(day)]] += (
            change + first_grants - firsts * defaults.get(key, 0)
        )

    series: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for key, created_per_day in new_profiles.items():
        profiles = granted = 0
        points = []
        for n, change in zip(created_per_day, granted_change[key], strict=True):
            profiles += n
            granted += change
            points.append((profiles, granted))
        series[key] = points
    return ConsentRates(days=[d.date().isoformat() for d in day_starts], series=series)


def _charted_day(*moments: str, now: datetime, first: date) -> Greatest:
    """The charted day whose end first counts something that happened at the latest of
    `moments` (fields), in `now`'s time zone; anything earlier counts from the first day."""
    days = [TruncDate(moment, tzinfo=now.tzinfo) for moment in moments]
    return Greatest(*days, Value(first, output_field=DateField()), output_field=DateField())


def _last_answer(*, profile: Any, purpose: Any, before: datetime) -> Cast:
    """A profile's last answer for a purpose before `before`, 1 or 0; NULL if none.
    Served by the consent history index (profile, purpose, -created_at)."""
    last = (
        ConsentEvent.objects.filter(profile_id=profile, purpose=purpose, created_at__lt=before)
        .order_by("-created_at", "-id")
        .values("granted")[:1]
    )
    return Cast(Subquery(last), output_field=IntegerField())


def _consent_changes_per_day(
    *, now: datetime, since: datetime, first: date, purposes: Iterable[str]
) -> list[tuple[str, str, Any, int, int, int]]:
    """Per jurisdiction, purpose and charted day, for the events from `since` to `now`:
    the summed change of those with an answer before them (answer minus that answer),
    how many had none, and how many of those granted.

    An event counts on its own day, or its profile's creation day if that is later (a
    clock a little behind); a child's human review events not at all.

    SQL around the ORM's query, because the ORM cannot aggregate over a window
    function (PostgreSQL refuses an aggregate of LAG()); the inner query, with its
    vendor's date functions, is the ORM's. It replaced a replay in Python of every event
    ever written (50,000 profiles, 500,000 events: 7 s before, 1 s now).
    """
    as_number = Cast("granted", output_field=IntegerField())
    events = (
        ConsentEvent.objects.filter(
            created_at__gte=since,
            created_at__lt=now,
            profile__created_at__lt=now,
            purpose__in=list(purposes),
        )
        .exclude(purpose=Purpose.HUMAN_REVIEW, profile__is_child=True)
        .annotate(
            jurisdiction=F("profile__account__jurisdiction"),
            for_purpose=F("purpose"),
            day=_charted_day("created_at", "profile__created_at", now=now, first=first),
            answer=as_number,
            # the event before it in the charted days, else the last one before them
            answer_before=Coalesce(
                Window(
                    Lag(as_number),
                    partition_by=[F("profile_id"), F("purpose")],
                    order_by=[F("created_at").asc(), F("id").asc()],
                ),
                _last_answer(
                    profile=OuterRef("profile_id"), purpose=OuterRef("purpose"), before=since
                ),
            ),
        )
        .values("jurisdiction", "for_purpose", "day", "answer", "answer_before")
        .order_by()
    )
    inner, params = events.query.sql_with_params()
    q = connection.ops.quote_name
    jurisdiction, purpose, day, answer, before = (
        q(name) for name in ("jurisdiction", "for_purpose", "day", "answer", "answer_before")
    )
    sql = (
        f"SELECT {jurisdiction}, {purpose}, {day},"  # noqa: S608 - our own names; values are params
        f" SUM(CASE WHEN {before} IS NULL THEN 0 ELSE {answer} - {before} END),"
        f" SUM(CASE WHEN {before} IS NULL THEN 1 ELSE 0 END),"
        f" SUM(CASE WHEN {before} IS NULL THEN {answer} ELSE 0 END)"
        f" FROM ({inner}) changes GROUP BY {jurisdiction}, {purpose}, {day}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [
            (j, p, d, int(change), int(firsts), int(first_grants))
            for j, p, d, change, firsts, first_grants in cursor.fetchall()
        ]


def _as_date(value: Any) -> date:
    """A day from the database: SQLite answers raw SQL with ISO text, PostgreSQL with a date."""
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
