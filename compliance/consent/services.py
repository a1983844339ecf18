"""Consent changes: the event, the current state and the ledger entry in one transaction.

A withdrawal commits together with everything it must stop, so it is in force before
its response is sent.
"""

from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.core.countries import require_country
from compliance.core.errors import ApplicationError, Conflict, Unprocessable, field_error
from compliance.ledger.services import ledger_append

from .models import Channel, ConsentDefault, ConsentEvent, ConsentState, Purpose
from .purposes import validate_purpose


def consent_states_initialise(*, profile: Any) -> None:
    ConsentState.objects.bulk_create(
        [ConsentState(profile=profile, purpose=purpose) for purpose in Purpose.values],
        ignore_conflicts=True,
    )


@transaction.atomic
def consent_set(
    *,
    profile: Any,
    purpose: str,
    granted: bool,
    channel: str,
    notice_version: str,
    actor: str,
    at: datetime | None = None,
) -> ConsentState:
    """Record a decision and make it the current state. `at` is when the person decided,
    when that was before now (an import of earlier decisions, the demo's history): the
    event carries it and the ledger entry, appended now, names it as `decided_at`."""
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
    # The row lock orders this change against concurrent changes and against a
    # hand-off that locks the row (docs/reliability.md, "Opt-out against hand-off").
    state, _ = ConsentState.objects.select_for_update().get_or_create(
        profile=profile, purpose=purpose
    )
    last = state.last_event
    if state.granted is granted and last is not None and last.notice_version == notice_version:
        return state

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
    if not granted:
        # Same transaction, state row still locked: no item of this profile survives.
        from compliance.sampling.services import review_items_revoke_for_profile  # imports us

        review_items_revoke_for_profile(profile=profile, purpose=purpose)
    ledger_append(
        kind="consent.granted" if granted else "consent.withdrawn",
        subject=f"profile:{profile.external_id}",
        actor=actor,
        payload={
            "purpose": purpose,
            "channel": channel,
            "notice_version": notice_version,
            "event": event.pk,
            **({"decided_at": at.isoformat()} if at is not None else {}),
        },
    )
    return state


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
