import re
from datetime import datetime
from typing import NamedTuple

from django.db import IntegrityError, transaction

from compliance.core.countries import require_country
from compliance.core.errors import ApplicationError, Conflict, field_error
from compliance.core.transactions import require_transaction
from compliance.ledger.services import ledger_append

from .models import DISPLAY_NAME_MAX, Account, Profile, RetentionChoice


def _validate_external_id(value: str, field: str) -> str:
    value = value.strip() if isinstance(value, str) else value
    if not isinstance(value, str) or not value or len(value) > 128:
        raise ApplicationError(
            "validation_error",
            f"{field} must be a non-empty string of at most 128 characters.",
            fields=field_error(
                field, "invalid", "Must be a non-empty string of at most 128 characters."
            ),
        )
    return value


@transaction.atomic
def account_create(*, external_id: str, jurisdiction: str, actor: str) -> Account:
    external_id = _validate_external_id(external_id, "external_id")
    require_country(jurisdiction, field="jurisdiction", code="unknown_jurisdiction")
    try:
        with transaction.atomic():
            account = Account.objects.create(external_id=external_id, jurisdiction=jurisdiction)
    except IntegrityError:
        raise Conflict("duplicate", f"An account {external_id!r} exists already.") from None
    ledger_append(
        kind="account.created",
        subject=f"account:{external_id}",
        actor=actor,
        payload={"jurisdiction": jurisdiction},
    )
    return account


def profile_insert(
    *,
    external_id: str,
    account_external_id: str,
    is_child: bool,
    at: datetime | None = None,
) -> Profile:
    """The profile's row, for the action `compliance.actions.profiles.profile_create`,
    which gives it its consent states and its ledger entry in the same transaction.
    `at` is when it was created on the platform, when that was before now (the demo's
    history): the reports count the profile from then."""
    require_transaction("profile_insert")
    external_id = _validate_external_id(external_id, "external_id")
    account = Account.objects.filter(external_id=account_external_id).first()
    if account is None:
        raise ApplicationError(
            "unknown_account",
            f"No account {account_external_id!r}.",
            fields=field_error("account", "unknown", "There is no account with this id."),
        )
    try:
        with transaction.atomic():
            profile = Profile.objects.create(
                external_id=external_id, account=account, is_child=is_child
            )
            if at is not None:  # auto_now_add ignores a value given to create()
                Profile.objects.filter(pk=profile.pk).update(created_at=at)
                profile.created_at = at
    except IntegrityError:
        raise Conflict("duplicate", f"A profile {external_id!r} exists already.") from None
    return profile


class RetentionChoiceChange(NamedTuple):
    profile: Profile  # locked until the transaction ends
    changed: bool  # False: the profile had this choice already; nothing was written
    previous: str | None  # None: the user had not chosen


def profile_retention_choice_set(*, profile: Profile, choice: str) -> RetentionChoiceChange:
    """Set the profile's retention choice. For the action
    `compliance.actions.profiles.profile_retention_set`, which reschedules the
    profile's artefacts and writes the ledger entry in the same transaction."""
    require_transaction("profile_retention_choice_set")
    if choice not in RetentionChoice.values:
        raise ApplicationError(
            "validation_error",
            f"choice must be one of {', '.join(RetentionChoice.values)}.",
            fields=field_error(
                "choice", "invalid", f"Must be one of {', '.join(RetentionChoice.values)}."
            ),
        )
    # The profile FOR NO KEY UPDATE, first of what the change locks (docs/architecture.md,
    # "Lock order"): it orders this change against the purge's claim and policy
    # application, which take the profile FOR SHARE before any artefact, without
    # blocking an ingest's insert of a recording.
    locked = Profile.objects.select_for_update(no_key=True).get(pk=profile.pk)
    previous = locked.retention_choice
    if previous == choice:
        return RetentionChoiceChange(locked, changed=False, previous=previous)
    locked.retention_choice = choice
    locked.save(update_fields=["retention_choice"])
    return RetentionChoiceChange(locked, changed=True, previous=previous)


# Invisible characters that belong inside a name: the joiners of emoji sequences and of
# scripts such as Persian and the Indic ones (U+200C, U+200D), and the tags of a
# subdivision's flag (U+1F3F4, then tags, then U+E007F). Every other one (a direction
# override such as U+202E, which could make a name read as something else; tags
# outside a flag, which could hide text) is refused, as is a name with nothing to see.
_JOINERS = frozenset("\u200c\u200d")
_FLAG = re.compile("\U0001f3f4[\U000e0020-\U000e007e]+\U000e007f")


def _printable_name(name: str) -> bool:
    """Whether `name` can be shown as it is ("" takes the name away)."""
    if not name:
        return True
    rest = _FLAG.sub("\U0001f3f4", name)
    return all(c.isprintable() or c in _JOINERS for c in rest) and any(
        c.isprintable() and not c.isspace() for c in rest
    )


def profile_rename(*, profile: Profile, display_name: str) -> Profile:
    """Give a profile the name its owner calls it by ("" takes the name away).

    No ledger entry: a name is what the pages call the profile, not a compliance fact,
    and a name a person typed must not be kept in a record that is never rewritten.
    """
    name = " ".join(display_name.split()) if isinstance(display_name, str) else None
    if name is None or len(name) > DISPLAY_NAME_MAX or not _printable_name(name):
        raise ApplicationError(
            "validation_error",
            f"display_name must be printable text of at most {DISPLAY_NAME_MAX} characters.",
            fields=field_error(
                "display_name",
                "invalid",
                f"Must be printable text of at most {DISPLAY_NAME_MAX} characters.",
            ),
        )
    Profile.objects.filter(pk=profile.pk).update(display_name=name)
    profile.display_name = name
    return profile
