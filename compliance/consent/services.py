"""Consent's own rows: events, current states, defaults.

A consent change is the action `compliance.actions.consent.consent_set`: this module
writes its rows (`consent_record`), the action adds, in the same transaction, what a
withdrawal must stop and the ledger entry, so that a withdrawal is in force before its
response is sent.
"""

from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.accounts.models import Profile
from compliance.core.countries import require_country
from compliance.core.errors import ApplicationError, Conflict, Unprocessable, field_error
from compliance.core.transactions import require_transaction
from compliance.ledger.services import ledger_append

from .models import Channel, ConsentDefault, ConsentEvent, ConsentState, Purpose
from .purposes import validate_purpose


def consent_states_initialise(*, profile: Profile) -> None:
    ConsentState.objects.bulk_create(
        [ConsentState(profile=profile, purpose=purpose) for purpose in Purpose.values],
        ignore_conflicts=True,
    )


def consent_record(
    *,
    profile: Profile,
    purpose: str,
    granted: bool,
    channel: str,
    notice_version: str,
    actor: str,
    at: datetime | None = None,
) -> tuple[ConsentState, ConsentEvent | None]:
    """The rows of a consent change: the event and the profile's current state, the state
    row locked FOR UPDATE until the transaction ends. Returns the state and the new
    event (None: the same answer under the same notice, nothing written).

    For the action `compliance.actions.consent.consent_set`, which, in the same
    transaction and with the row still locked, stops what a withdrawal must stop and
    writes the ledger entry. The lock is what orders this change against a concurrent
    change and against a hand-off that locks the row (docs/reliability.md, "Opt-out
    against hand-off"), so it refuses to run outside a transaction, on every database
    (SQLite has no row locks to refuse it).
    `at` is when the person decided, when that was before now (an import of earlier
    decisions, the demo's history): the event carries it.
    """
    require_transaction("consent_record")
    validate_purpose(purpose)
    if channel not in Channel.values:
        raise ApplicationError(
            "validation_error",
            f"channel must be one of {', '.join(Channel.values)}.",
            fields=field_error(
                "channel", "invalid", f"Must be one of {', '.join(Channel.values)}."
            ),
        )
    if granted and purpose == Purpose.HUMAN_REVIEW and profile.is_child:
        raise Unprocessable(
            "child_profile",
            "A child's profile can never be granted human review.",
            fields=field_error(
                "granted", "child_profile", "A child's profile can never be granted human review."
            ),
        )
    state, _ = ConsentState.objects.select_for_update().get_or_create(
        profile=profile, purpose=purpose
    )
    last = state.last_event
    if state.granted is granted and last is not None and last.notice_version == notice_version:
        return state, None

    now = at or timezone.now()
    event = ConsentEvent.objects.create(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel=channel,
        notice_version=notice_version,
        actor=actor,
        created_at=now,
    )
    state.granted = granted
    state.last_event = event
    state.updated_at = now
    state.save(update_fields=["granted", "last_event", "updated_at"])
    return state, event


def consent_states_lock(*, profile_ids: list[int], purposes: list[str]) -> None:
    """The hand-off's side of the opt-out lock: the profiles' state rows for `purposes`,
    FOR NO KEY UPDATE (it conflicts with `consent_record`'s FOR UPDATE), in id order.

    Every state row exists from the profile's creation; one found missing is created
    first, so that there is always a row for the opt-out and the hand-off to meet on.
    """
    if not profile_ids:
        return
    states = ConsentState.objects.filter(profile_id__any_of=profile_ids, purpose__in=purposes)
    locked = set(
        states.order_by("pk").select_for_update(no_key=True).values_list("profile_id", "purpose")
    )
    missing = [(p, u) for p in profile_ids for u in purposes if (p, u) not in locked]
    if missing:
        ConsentState.objects.bulk_create(
            [ConsentState(profile_id=p, purpose=u) for p, u in missing], ignore_conflicts=True
        )
        list(
            ConsentState.objects.filter(profile_id__in={p for p, _ in missing})
            .filter(purpose__in=purposes)
            .order_by("pk")
            .select_for_update(no_key=True)
            .values_list("pk", flat=True)
        )


@transaction.atomic
def consent_default_create(
    *, jurisdiction: str, purpose: str, granted: bool, actor: str
) -> ConsentDefault:
    require_country(jurisdiction, field="jurisdiction", code="unknown_jurisdiction")
    validate_purpose(purpose)
    try:
        with transaction.atomic():
            default = ConsentDefault.objects.create(
                jurisdiction=jurisdiction, purpose=purpose, granted=granted, created_by=actor
            )
    except IntegrityError:
        raise Conflict(
            "duplicate",
            f"A default for {jurisdiction}/{purpose} exists; delete it first to change it.",
        ) from None
    ledger_append(
        kind="consent_default.created",
        subject=f"consent_default:{default.pk}",
        actor=actor,
        payload={"jurisdiction": jurisdiction, "purpose": purpose, "granted": granted},
    )
    return default


@transaction.atomic
def consent_default_delete(*, default: ConsentDefault, actor: str) -> None:
    ledger_append(
        kind="consent_default.deleted",
        subject=f"consent_default:{default.pk}",
        actor=actor,
        payload={
            "jurisdiction": default.jurisdiction,
            "purpose": default.purpose,
            "granted": default.granted,
        },
    )
    default.delete()
