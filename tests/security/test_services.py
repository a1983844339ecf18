import threading

import pytest
from django.db import connection
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.core.errors import ApplicationError
from compliance.ledger.models import LedgerEntry
from compliance.security.roles import OFFICERS_GROUP, has_officer_role
from compliance.security.services import (
    needs_second_factor,
    second_factor_issue,
    second_factor_verify,
)
from tests.conftest import postgres_only
from tests.factories import ReviewerFactory, UserFactory

from .conftest import app_code, person

pytestmark = pytest.mark.django_db


def test_issuing_makes_an_officer_with_an_app_and_ten_backup_codes():
    setup = second_factor_issue(username="olivia", create=True, officer=True, actor="t")

    user = setup.user
    assert setup.password and user.check_password(setup.password)
    assert user.is_staff and not user.is_superuser
    assert user.groups.filter(name=OFFICERS_GROUP).exists()
    assert TOTPDevice.objects.get(user=user).confirmed
    assert sorted(
        StaticToken.objects.filter(device__user=user).values_list("token", flat=True)
    ) == (sorted(setup.backup_codes))
    assert len(set(setup.backup_codes)) == 10
    assert setup.provisioning_uri.startswith("otpauth://totp/Earshot%3Aolivia?secret=")
    assert "issuer=Earshot" in setup.provisioning_uri


def test_issuing_writes_a_ledger_entry_without_secrets():
    setup = second_factor_issue(username="olivia", create=True, officer=True, actor="manage.py")

    entry = LedgerEntry.objects.get(kind="security.second_factor_issued")
    assert entry.subject == f"user:{setup.user.pk}"
    assert entry.actor == "manage.py"
    text = str(entry.payload)
    assert setup.backup_codes[0] not in text
    assert TOTPDevice.objects.get(user=setup.user).key not in text


def test_officers_may_view_what_they_oversee_in_the_admin():
    setup = second_factor_issue(username="olivia", create=True, officer=True)

    assert setup.user.has_perm("ledger.view_ledgerentry")
    assert setup.user.has_perm("retention.view_legalhold")
    assert not setup.user.has_perm("retention.change_legalhold")
    assert not setup.user.has_perm("auth.view_user")


def test_an_existing_user_is_refused_unless_asked_and_devices_are_not_silently_replaced():
    person("olivia")
    with pytest.raises(ApplicationError, match="exists"):
        second_factor_issue(username="olivia", create=True, officer=True)
    first = second_factor_issue(username="olivia", create=False, officer=True)

    with pytest.raises(ApplicationError, match="has a second factor already"):
        second_factor_issue(username="olivia", create=False, officer=True)
    second = second_factor_issue(
        username="olivia", create=False, officer=True, replace_devices=True
    )

    assert first.password is None  # an existing user keeps their password
    assert TOTPDevice.objects.filter(user=second.user).count() == 1
    assert StaticDevice.objects.filter(user=second.user).count() == 1
    assert not StaticToken.objects.filter(token__in=first.backup_codes).exists()


def test_a_device_only_issue_does_not_make_an_officer():
    person("rita")

    setup = second_factor_issue(username="rita", create=False, officer=False)

    assert not has_officer_role(setup.user)
    assert not setup.user.is_staff


def test_an_unknown_user_is_refused():
    with pytest.raises(ApplicationError, match="No user"):
        second_factor_issue(username="ghost", create=False, officer=True)


@pytest.mark.parametrize(
    ("kind", "needs"),
    [("end user", False), ("reviewer", True), ("officer", True), ("staff", True)],
)
def test_who_needs_a_second_factor(kind, needs):
    user = UserFactory(is_staff=kind == "staff")
    if kind == "reviewer":
        ReviewerFactory(user=user)
    if kind == "officer":
        user.groups.create(name=OFFICERS_GROUP)

    assert needs_second_factor(user) is needs


def test_verify_accepts_the_app_code_and_a_backup_code_and_nothing_else():
    setup = second_factor_issue(username="olivia", create=True, officer=True)
    user = setup.user

    assert isinstance(second_factor_verify(user=user, token=app_code(user)), TOTPDevice)
    assert isinstance(second_factor_verify(user=user, token=setup.backup_codes[3]), StaticDevice)
    assert second_factor_verify(user=user, token=setup.backup_codes[3]) is None
    assert second_factor_verify(user=user, token="") is None
    assert second_factor_verify(user=user, token="x" * 500) is None


def test_a_code_from_the_next_time_step_is_accepted_once_and_older_ones_then_refused():
    setup = second_factor_issue(username="olivia", create=True, officer=True)
    user = setup.user
    now, later = app_code(user), app_code(user, offset_steps=1)

    assert second_factor_verify(user=user, token=later) is not None
    assert second_factor_verify(user=user, token=now) is None  # the clock only moves on


def test_a_backup_code_does_not_count_as_a_failed_app_code():
    setup = second_factor_issue(username="olivia", create=True, officer=True)
    user = setup.user
    for code in setup.backup_codes[:4]:
        assert second_factor_verify(user=user, token=code) is not None

    assert second_factor_verify(user=user, token=app_code(user)) is not None


def _present_at_once(user, code: str, threads: int) -> list[bool]:
    """`threads` connections verify `code` for `user` at the same moment; whether each
    was accepted."""
    barrier = threading.Barrier(threads)
    results: list[bool] = []
    lock = threading.Lock()

    def present() -> None:
        try:
            barrier.wait()
            ok = second_factor_verify(user=user, token=code) is not None
            with lock:
                results.append(ok)
        finally:
            connection.close()

    workers = [threading.Thread(target=present) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return results


@postgres_only()
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("round_", range(3))
def test_a_backup_code_presented_by_many_at_once_works_exactly_once(round_):
    setup = second_factor_issue(username=f"olivia-{round_}", create=True, officer=True)
    code = setup.backup_codes[0]
    threads = 8
    results = _present_at_once(setup.user, code, threads)

    assert sorted(results) == [False] * (threads - 1) + [True]
    assert not StaticToken.objects.filter(token=code).exists()


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_an_app_code_presented_by_many_at_once_works_exactly_once():
    setup = second_factor_issue(username="olivia", create=True, officer=True)
    code = app_code(setup.user)
    threads = 8
    results = _present_at_once(setup.user, code, threads)

    assert results.count(True) == 1
