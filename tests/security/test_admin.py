import pytest
from django.contrib import admin
from django.db import transaction
from django.test import Client
from django_otp.admin import OTPAdminSite

from compliance.clients.models import ServiceClient
from compliance.ledger.models import LedgerEntry
from compliance.ledger.services import ledger_append
from compliance.retention.models import LegalHold
from compliance.security.services import second_factor_issue
from compliance.webhooks.services import subscription_create

from .conftest import officer_without_device, person, verified_client

pytestmark = pytest.mark.django_db


def _follow_to_sign_in(client: Client, path: str) -> None:
    response = client.get(path, follow=True)
    assert response.redirect_chain, "expected a redirect"
    final, _ = response.redirect_chain[-1]
    assert final.startswith("/accounts/login/?next=")
    assert response.status_code == 200
    assert 'name="otp_token"' in response.content.decode()


def test_the_admin_site_requires_a_second_factor():
    assert isinstance(admin.site._wrapped, OTPAdminSite)


@pytest.mark.parametrize("path", ["/admin/", "/admin/ledger/ledgerentry/"])
def test_anonymous_visitors_are_sent_to_the_sign_in_page(client, path):
    _follow_to_sign_in(client, path)


@pytest.mark.parametrize("superuser", [False, True])
def test_unverified_staff_are_sent_to_the_sign_in_page_not_let_in(superuser):
    user = officer_without_device()
    user.is_superuser = superuser
    user.save()
    client = Client()
    client.force_login(user)

    response = client.get("/admin/", follow=True)

    assert response.redirect_chain[-1][0] == "/accounts/login/?next=/admin/"
    assert "second factor" in response.content.decode()
    assert "Site administration" not in response.content.decode()


def test_the_admins_own_login_form_is_not_a_way_in(client):
    person("root", is_staff=True, is_superuser=True)

    response = client.post("/admin/login/", {"username": "root", "password": "x"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_a_verified_officer_sees_the_admin_read_only(officer):
    client = verified_client(officer.user)
    with transaction.atomic():
        appended = ledger_append(kind="test", subject="s")
    entries = LedgerEntry.objects.count()

    index = client.get("/admin/")
    ledger = client.get("/admin/ledger/ledgerentry/")
    add = client.get("/admin/retention/legalhold/add/")
    entry = client.get(f"/admin/ledger/ledgerentry/{appended.pk}/change/")
    delete = client.post(f"/admin/ledger/ledgerentry/{appended.pk}/delete/")

    assert index.status_code == 200
    assert ledger.status_code == 200
    assert add.status_code == 403
    assert entry.status_code == 200
    assert b'name="_save"' not in entry.content
    assert delete.status_code == 403
    assert LedgerEntry.objects.count() == entries
    assert LegalHold.objects.count() == 0


def test_a_verified_end_user_is_not_staff_and_stays_out(client):
    person("erin")
    setup = second_factor_issue(username="erin", create=False, officer=False)

    response = verified_client(setup.user).get("/admin/")

    assert response.status_code == 302
    assert "/accounts/login/" in response["Location"] or "/admin/login/" in response["Location"]


def test_service_client_key_hashes_are_not_shown(officer, api_client_with_scopes):
    api_client_with_scopes("reports:read")
    client = verified_client(officer.user)
    pk = ServiceClient.objects.get().pk

    page = client.get(f"/admin/clients/serviceclient/{pk}/change/").content.decode()

    assert ServiceClient.objects.get().key_hash not in page


def test_webhook_secrets_are_not_shown_and_the_ledger_records_are_listed(officer, settings):
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    with transaction.atomic():
        subscription, secret = subscription_create(
            url="http://127.0.0.1:9/hook", events=["*"], description="", holds_copies=False,
            actor="t",
        )  # fmt: skip
    client = verified_client(officer.user)

    page = client.get(f"/admin/webhooks/subscription/{subscription.pk}/change/")

    assert page.status_code == 200
    assert subscription.secret_encrypted not in page.content.decode()
    assert secret not in page.content.decode()
    for path in (
        "/admin/ledger/ledgeracknowledgement/",
        "/admin/ledger/ledgercheckpoint/",
        "/admin/ledger/ledgerkey/",
        "/admin/webhooks/delivery/",
    ):
        assert client.get(path).status_code == 200, path
