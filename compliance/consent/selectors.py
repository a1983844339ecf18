from collections.abc import Iterable
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
    return consent_current_many(profiles=[profile])[profile.pk]


def consent_current_many(*, profiles: Iterable[Profile]) -> dict[int, list[CurrentConsent]]:
    """Each profile's current consent per purpose, in two queries however many there are
    (pass profiles with their account already loaded, `select_related("account")`:
    each profile's jurisdiction is read from it)."""
    profiles = list(profiles)
    states: dict[tuple[int, str], ConsentState] = {
        (s.profile_id, s.purpose): s
        for s in ConsentState.objects.filter(profile__in=profiles).select_related("last_event")
    }
    jurisdictions = {profile.account.jurisdiction for profile in profiles}
    defaults = {
        (j, p): g
        for j, p, g in ConsentDefault.objects.filter(jurisdiction__in=jurisdictions).values_list(
            "jurisdiction", "purpose", "granted"
        )
    }
    return {
        profile.pk: [
            _current(
                purpose,
                states.get((profile.pk, purpose)),
                defaults.get((profile.account.jurisdiction, purpose)),
            )
            for purpose in Purpose.values
        ]
        for profile in profiles
    }


def _current(purpose: str, state: ConsentState | None, default: bool | None) -> CurrentConsent:
    if state is not None and state.granted is not None:
        event = state.last_event
        return CurrentConsent(
            purpose=purpose,
            granted=state.granted,
            source="explicit",
            channel=event.channel if event else None,
            notice_version=event.notice_version if event else None,
            updated_at=state.updated_at,
        )
    if default is not None:
        return CurrentConsent(purpose, default, "default", None, None, None)
    return CurrentConsent(purpose, False, "none", None, None, None)


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
