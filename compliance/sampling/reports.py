"""Review analytics: which reviewer locations were given, heard and annotated clips.
Read by the consent report of the API and by the officers' dashboard, so that both show
the same figures."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, F, Q

from compliance.core.periods import days_ending

from .models import ReviewItem, ReviewItemState

DEFAULT_DAYS = 30


@dataclass(frozen=True)
class ReviewsAtLocation:
    location: str
    selected: int
    heard: int
    annotated: int
    revoked: int
    cross_border: int  # heard by a reviewer outside the recording's jurisdiction


def reviews_by_location(*, now: datetime, days: int = DEFAULT_DAYS) -> list[ReviewsAtLocation]:
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
