from dataclasses import dataclass
from datetime import datetime

from django.db.models import QuerySet

from compliance.accounts.models import Profile
from compliance.core.errors import NotFound

from .models import ConsentDefault, ConsentEvent, ConsentState, Purpose


@dataclass(frozen=True)
class CurrentConsent:
    purpose: str
    granted: bool
    source: str  # "explicit" (an event), "default" (the jurisdiction's), or "none" (opt-in)
    channel: str | None
    notice_version: str | None
    updated_at: datetime | None


def consent_current(*, profile: Profile) -> list[CurrentConsent]:
    states = {
        s.purpose: s
        for s in ConsentState.objects.filter(profile=profile).select_related("last_event")
    }
    defaults = dict(
        ConsentDefault.objects.filter(jurisdiction=profile.account.jurisdiction).values_list(
            "purpose", "granted"
        )
    )
    result = []
    for purpose in Purpose.values:
        state = states.get(purpose)
        if state is not None and state.granted is not None:
            event = state.last_event
            result.append(
                CurrentConsent(
                    purpose=purpose,
                    granted=state.granted,
                    source="explicit",
                    channel=event.channel if event else None,
                    notice_version=event.notice_version if event else None,
                    updated_at=state.updated_at,
                )
            )
        elif purpose in defaults:
            result.append(CurrentConsent(purpose, defaults[purpose], "default", None, None, None))
        else:
            result.append(CurrentConsent(purpose, False, "none", None, None, None))
    return result


def consent_current_for(*, profile: Profile, purpose: str) -> CurrentConsent:
    return next(c for c in consent_current(profile=profile) if c.purpose == purpose)


def consent_history(*, profile: Profile, purpose: str) -> QuerySet[ConsentEvent]:
    return ConsentEvent.objects.filter(profile=profile, purpose=purpose).order_by(
        "-created_at", "-id"
    )


def consent_defaults_list() -> QuerySet[ConsentDefault]:
    return ConsentDefault.objects.order_by("jurisdiction", "purpose")


def consent_default_get(*, pk: int) -> ConsentDefault:
    default = ConsentDefault.objects.filter(pk=pk).first()
    if default is None:
        raise NotFound("Consent default")
    return default
