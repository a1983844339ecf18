"""Profiles: creation (accounts, then consent) and the retention choice (accounts,
then retention)."""

from datetime import datetime

from django.db import transaction

from compliance.accounts.models import Profile
from compliance.accounts.services import profile_insert, profile_retention_choice_set
from compliance.consent.services import consent_states_initialise
from compliance.ledger.services import ledger_append
from compliance.retention.services import profile_reschedule


@transaction.atomic
def profile_create(
    *,
    external_id: str,
    account_external_id: str,
    is_child: bool,
    actor: str,
    at: datetime | None = None,
) -> Profile:
    """A new profile with a consent-state row per purpose, in the transaction of its
    ledger entry. `at`: see `profile_insert`."""
    profile = profile_insert(
        external_id=external_id,
        account_external_id=account_external_id,
        is_child=is_child,
        at=at,
    )
    consent_states_initialise(profile=profile)
    ledger_append(
        kind="profile.created",
        subject=f"profile:{profile.external_id}",
        actor=actor,
        payload={
            "account": profile.account.external_id,
            "is_child": is_child,
            **({"created_at": at.isoformat()} if at is not None else {}),
        },
    )
    return profile


@transaction.atomic
def profile_retention_set(*, profile: Profile, choice: str, actor: str) -> Profile:
    """The user's retention choice, and the expiry of every artefact of the profile
    recomputed under it, in one transaction.

    Locks: the profile FOR NO KEY UPDATE (accounts), then the profile's active
    artefacts in id order (retention's reschedule), the ledger last. An ingest takes
    the profile FOR SHARE before it writes artefacts, so it either sees the new
    choice or its artefacts are there for the reschedule to read.
    """
    change = profile_retention_choice_set(profile=profile, choice=choice)
    if not change.changed:
        return change.profile
    profile_reschedule(profile=change.profile)
    ledger_append(
        kind="retention_choice.changed",
        subject=f"profile:{change.profile.external_id}",
        actor=actor,
        payload={"from": change.previous, "to": choice},
    )
    return change.profile
