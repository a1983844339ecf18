"""Second factors (django-otp) and the people who must use them.

Officers, reviewers and staff sign in with a password and a TOTP code, or one of their
static backup codes. A backup code works once: it is checked and deleted under a row
lock on its device, so two sign-ins racing with the same code cannot both succeed
(django-otp #85); the TOTP device is locked the same way, so a code is not accepted
twice in its time step either.
"""

import secrets
from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group, Permission, User
from django.db import transaction
from django_otp import devices_for_user, user_has_device
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.core.errors import ApplicationError, Conflict, NotFound
from compliance.ledger.services import ledger_append
from compliance.security.roles import OFFICERS_GROUP, has_officer_role

BACKUP_CODES = 10
TOKEN_MAX_LENGTH = 16
APP_CODE_DIGITS = 6  # the TOTP devices issued here; backup codes are 8 base-32 characters

# What officers may look at in the admin. They change things through the services
# (pages, API) that write the ledger; the admin itself is read-only for them.
OFFICER_VIEW_APPS = (
    "accounts",
    "auditlog",
    "clients",
    "consent",
    "ledger",
    "recordings",
    "retention",
    "sampling",
    "transfers",
    "webhooks",
)


def needs_second_factor(user: User | AnonymousUser | None) -> bool:
    """Who must sign in with a second factor: officers, reviewers and staff."""
    if user is None or not user.is_authenticated:
        return False
    return bool(user.is_staff or has_officer_role(user) or hasattr(user, "reviewer"))


def has_second_factor(user: AbstractBaseUser) -> bool:
    return user_has_device(user, confirmed=True)


def _normalised(token: str) -> str:
    return "".join(token.split())


def second_factor_verify(*, user: AbstractBaseUser, token: str) -> Device | None:
    """The user's device that accepts `token`, now; None if none does.

    Every device of the user is locked FOR UPDATE for the check, so a backup code is
    consumed exactly once and a TOTP code's time step is recorded before anyone else
    can present the same code. django-otp's own throttle (each failure doubles the
    wait) is kept: its counters commit with the transaction.
    """
    token = _normalised(token)
    if not token or len(token) > TOKEN_MAX_LENGTH:
        return None
    with transaction.atomic():
        for device in devices_for_user(user, confirmed=True, for_verify=True):
            if isinstance(device, TOTPDevice):
                # A backup code is not a failed TOTP attempt: it would lengthen the
                # app's throttle for nothing.
                if token.isdigit() and len(token) == device.digits and device.verify_token(token):
                    return device
            elif isinstance(device, StaticDevice):
                # Backup codes are issued in lower case; people type them as they like.
                app_code = token.isdigit() and len(token) == APP_CODE_DIGITS
                if not app_code and device.verify_token(token.lower()):
                    return device
            elif device.verify_token(token):
                return device
    return None


# --- officers -----------------------------------------------------------------------------


def officers_group_ensure() -> Group:
    """The officers' group, with view permission on what officers oversee."""
    group, _ = Group.objects.get_or_create(name=OFFICERS_GROUP)
    group.permissions.add(
        *Permission.objects.filter(
            codename__startswith="view_", content_type__app_label__in=OFFICER_VIEW_APPS
        )
    )
    return group


@dataclass
class SecondFactorSetup:
    user: AbstractBaseUser
    password: str | None  # set only when a new account got a generated password
    provisioning_uri: str
    backup_codes: list[str] = field(default_factory=list)


def _issue_devices(user: AbstractBaseUser, *, backup_codes: int) -> tuple[TOTPDevice, list[str]]:
    totp = TOTPDevice.objects.create(
        user=user, name="authenticator app", digits=APP_CODE_DIGITS, confirmed=True
    )
    static = StaticDevice.objects.create(user=user, name="backup codes", confirmed=True)
    codes = [StaticToken.random_token() for _ in range(backup_codes)]
    StaticToken.objects.bulk_create(StaticToken(device=static, token=code) for code in codes)
    return totp, codes


@transaction.atomic
def second_factor_issue(
    *,
    username: str,
    create: bool,
    officer: bool,
    replace_devices: bool = False,
    email: str = "",
    backup_codes: int = BACKUP_CODES,
    actor: str = "",
) -> SecondFactorSetup:
    """Give a person a TOTP device and backup codes, creating them (with a generated
    password) when `create`, and making them an officer when `officer`.

    Replacing devices is explicit: whoever held the old app or codes loses them.
    """
    user_model = get_user_model()
    user = user_model.objects.filter(**{user_model.USERNAME_FIELD: username}).first()
    password = None
    if create:
        if user is not None:
            raise Conflict("duplicate", f"A user {username!r} exists; pass --existing.")
        if not username.strip():
            raise ApplicationError("validation_error", "A username is required.")
        password = secrets.token_urlsafe(18)
        user = user_model.objects.create_user(username=username, email=email, password=password)
    elif user is None:
        raise NotFound("not_found", f"No user {username!r}.")
    if officer:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
        user.groups.add(officers_group_ensure())
    existing = [d for d in devices_for_user(user, confirmed=None)]
    if existing and not replace_devices:
        raise Conflict(
            "has_second_factor",
            f"{username!r} has a second factor already; pass --replace-devices to issue new ones.",
        )
    for device in existing:
        device.delete()
    totp, codes = _issue_devices(user, backup_codes=backup_codes)
    ledger_append(
        kind="security.second_factor_issued",
        subject=f"user:{user.pk}",
        actor=actor,
        payload={
            "officer": has_officer_role(user),
            "created": create,
            "replaced": len(existing),
            "backup_codes": len(codes),
        },
    )
    return SecondFactorSetup(
        user=user, password=password, provisioning_uri=totp.config_url, backup_codes=codes
    )
