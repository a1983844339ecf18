"""A consent change: consent's rows, what a withdrawal stops (sampling), the ledger."""

from datetime import datetime

from django.db import transaction

from compliance.accounts.models import Profile
from compliance.consent.models import ConsentState
from compliance.consent.services import consent_record
from compliance.ledger.services import ledger_append
from compliance.sampling.services import review_items_revoke_for_profile


@transaction.atomic
def consent_set(
    *,
    profile: Profile,
    purpose: str,
    granted: bool,
    channel: str,
    notice_version: str,
    actor: str,
    at: datetime | None = None,
) -> ConsentState:
    """Grant or withdraw `purpose` for `profile`; a repeat of the current answer under
    the same notice changes nothing and writes nothing.

    A withdrawal revokes the profile's open review items for the purpose in the same
    transaction, while the profile's consent lock is still held (docs/invariants.md): a
    draw or clip access that held the lock first is revoked here, one that comes after
    sees the withdrawal. Locks: the consent lock and the consent state FOR UPDATE, then
    review items (the revocation's UPDATE), the ledger last. `at` is when the person
    decided, when that was before now (an import of earlier decisions, the demo's
    history): the event carries it and the ledger entry, appended now, names it as
    `decided_at`.
    """
    state, event = consent_record(
        profile=profile,
        purpose=purpose,
        granted=granted,
        channel=channel,
        notice_version=notice_version,
        actor=actor,
        at=at,
    )
    if event is None:
        return state
    if not granted:
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
