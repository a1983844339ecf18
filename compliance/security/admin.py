"""The Django admin: only for staff verified by a second factor, and read-only.

Every change to the domain goes through a service that writes the ledger in the same
transaction; an admin change form would bypass it. So the admin shows, and the
officer pages and the API change.
"""

from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.views import redirect_to_login
from django.db import models
from django.http import HttpRequest, HttpResponse
from django.urls import reverse
from django_otp.admin import OTPAdminSite

# Shown read-only when no app registers an admin of its own.
READ_ONLY_MODELS: dict[str, list[str]] = {
    "accounts.Account": [],
    "accounts.Profile": [],
    "consent.ConsentEvent": [],
    "consent.ConsentState": [],
    "consent.ConsentDefault": [],
    "recordings.Recording": [],
    "transfers.TransferRule": [],
    "retention.RetentionPolicy": [],
    "retention.LegalHold": [],
    "retention.DeletionRequest": [],
    "ledger.LedgerEntry": [],
    "ledger.VerificationRun": [],
    "ledger.LedgerAcknowledgement": [],
    "ledger.LedgerCheckpoint": [],
    "ledger.LedgerKey": [],
    "webhooks.Subscription": ["secret_encrypted", "previous_secret_encrypted"],
    "webhooks.Delivery": [],
    "clients.ServiceClient": ["key_hash"],
}
LIST_COLUMNS = 8


class EarshotAdminSite(OTPAdminSite):
    """OTPAdminSite admits only sessions verified by a second factor. Its own login
    form is replaced by the site's sign-in page, which is throttled and the one way in."""

    site_header = "Earshot administration"
    site_title = "Earshot"

    def login(self, request: HttpRequest, extra_context: Any = None) -> HttpResponse:
        if request.user.is_authenticated:
            messages.warning(
                request,
                "The administration is for staff signed in with their second factor.",
            )
        return redirect_to_login(
            request.GET.get("next") or reverse("admin:index", current_app=self.name),
            settings.LOGIN_URL,
        )


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _read_only_admin(model: type[models.Model], hidden: list[str]) -> type[admin.ModelAdmin]:
    shown = [
        f.name
        for f in model._meta.fields
        if f.name not in hidden and not isinstance(f, models.JSONField | models.TextField)
    ]
    return type(
        f"{model.__name__}ReadOnlyAdmin",
        (ReadOnlyAdmin,),
        {"list_display": shown[:LIST_COLUMNS], "exclude": hidden or None},
    )


def admin_install() -> None:
    """Make the default admin site the OTP-guarded one, and show the domain models
    that no app shows yet (an app's own admin.py always wins: it registers first)."""
    admin.site.__class__ = EarshotAdminSite
    for label, hidden in READ_ONLY_MODELS.items():
        model = apps.get_model(label)
        if not admin.site.is_registered(model):
            admin.site.register(model, _read_only_admin(model, hidden))
