from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import Group
from django.core.cache import cache
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from compliance.security.roles import OFFICERS_GROUP
from compliance.security.services import SecondFactorSetup, second_factor_issue
from compliance.security.throttling import throttle_blocks_forget
from tests.factories import UserFactory
from tests.retention.conftest import ingest  # noqa: F401  (the purge tests' fixture)

PASSWORD = "correct horse battery staple"


@pytest.fixture(autouse=True)
def _empty_cache() -> None:
    """Throttle counters must not leak from one test into the next."""
    cache.clear()
    throttle_blocks_forget()


def app_code(user: Any, *, offset_steps: int = 0) -> str:
    """The code the user's authenticator app shows now (or `offset_steps` later)."""
    device = TOTPDevice.objects.get(user=user)
    return str(
        totp(device.bin_key, step=device.step, t0=device.t0 - offset_steps * device.step)
    ).zfill(device.digits)


def person(username: str | None = None, **fields: Any) -> Any:
    user = UserFactory(**({"username": username} if username else {}), **fields)
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def make_officer(db) -> Callable[..., SecondFactorSetup]:
    """A privacy officer with a TOTP device and backup codes."""

    def make(username: str = "olivia") -> SecondFactorSetup:
        person(username)
        return second_factor_issue(username=username, create=False, officer=True)

    return make


@pytest.fixture
def officer(make_officer) -> SecondFactorSetup:
    return make_officer()


def verified_client(user: Any, *, device: Any = None) -> APIClient:
    """A session for `user`, verified by their TOTP device, as the sign-in leaves it."""
    client = APIClient()
    client.force_login(user)
    device = device or TOTPDevice.objects.get(user=user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id
    session.save()
    return client


def session_client(user: Any) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def officer_without_device(username: str = "unverified-officer") -> Any:
    user = person(username, is_staff=True)
    user.groups.add(Group.objects.get_or_create(name=OFFICERS_GROUP)[0])
    return user
