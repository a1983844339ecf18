"""Evidence to take away: consent, deletion and purge receipts (compact JWS) and a profile's
evidence bundle (JSON), served as downloads to the signed-in session.

End users reach their own profiles' (anyone else's do not exist for them: 404, as on
the privacy page); privacy officers any profile's, from the dashboard. The receipts
and bundles are the API's (compliance/consent/receipts.py, compliance/retention/
receipts.py, compliance/consent/evidence.py), so they verify with
`python3 -m earshot_verify` as the API's do.
"""

import json
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from compliance.accounts.models import Profile
from compliance.accounts.selectors import profile_get
from compliance.consent.evidence import profile_evidence
from compliance.consent.models import Purpose
from compliance.consent.receipts import consent_receipt_latest
from compliance.consent.selectors import consent_current
from compliance.core.errors import ApplicationError, NotFound
from compliance.retention.models import DeletionRequest
from compliance.retention.receipts import deletion_receipt, purge_receipts
from compliance.retention.selectors import deletion_request_get
from compliance.security.decorators import officer_required

from .. import selectors
from ..forms import PURPOSE_LABELS
from .privacy import _own_profile

_JWS = "application/jose"


def _download(body: str, *, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(body, content_type=f"{content_type}; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"  # personal data: never from a shared cache
    return response


def _safe(name: str) -> str:
    """An external id as a file name: anything but letters, digits, '-' and '_' as '_'."""
    return "".join(c if c.isascii() and (c.isalnum() or c in "-_") else "_" for c in name)


def _answer(make: Callable[[], HttpResponse]) -> HttpResponse:
    """A refusal by the service (no receipt yet, a ledger that disagrees with its
    checkpoints) as a plain page with its status, never a 500."""
    try:
        return make()
    except ApplicationError as refusal:
        return HttpResponse(
            refusal.message, status=refusal.status_code, content_type="text/plain; charset=utf-8"
        )


def _consent_receipt(profile: Profile, purpose: str) -> HttpResponse:
    if purpose not in Purpose.values:
        raise Http404("No such purpose.")
    return _answer(
        lambda: _download(
            consent_receipt_latest(profile=profile, purpose=purpose)["receipt"],
            filename=f"consent-receipt-{_safe(profile.external_id)}-{purpose}.jws",
            content_type=_JWS,
        )
    )


def _deletion_receipt(deletion: DeletionRequest) -> HttpResponse:
    return _answer(
        lambda: _download(
            deletion_receipt(request=deletion)["receipt"],
            filename=f"deletion-receipt-{_safe(deletion.public_id)}.jws",
            content_type=_JWS,
        )
    )


def _evidence(profile: Profile) -> HttpResponse:
    return _answer(
        lambda: _download(
            json.dumps(profile_evidence(profile=profile), indent=1),
            filename=f"evidence-{_safe(profile.external_id)}.json",
            content_type="application/json",
        )
    )


def _purge_receipts(profile: Profile) -> HttpResponse:
    """The API's answer (GET /api/v1/profiles/{id}/purge-receipts), as one file."""
    return _answer(
        lambda: _download(
            json.dumps(
                {"receipts": purge_receipts(profile_external_id=profile.external_id)}, indent=1
            ),
            filename=f"purge-receipts-{_safe(profile.external_id)}.json",
            content_type="application/json",
        )
    )


# --- the privacy page (the owner) ----------------------------------------------------


@require_GET
@login_required
def privacy_consent_receipt(request: HttpRequest, profile_id: str, purpose: str) -> HttpResponse:
    return _consent_receipt(_own_profile(request, profile_id), purpose)


@require_GET
@login_required
def privacy_evidence(request: HttpRequest, profile_id: str) -> HttpResponse:
    return _evidence(_own_profile(request, profile_id))


@require_GET
@login_required
def privacy_purge_receipts(request: HttpRequest, profile_id: str) -> HttpResponse:
    return _purge_receipts(_own_profile(request, profile_id))


@require_GET
@login_required
def privacy_deletion_receipt(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        deletion = selectors.deletion_request_of_user(user=request.user, public_id=public_id)
    except NotFound:
        raise Http404("No such deletion request.") from None
    return _deletion_receipt(deletion)


# --- the officers' pages -----------------------------------------------------------------


def _any_profile(profile_id: str) -> Profile:
    try:
        return profile_get(external_id=profile_id)
    except NotFound:
        raise Http404("No such profile.") from None


@require_GET
@officer_required
def officer_evidence(request: HttpRequest) -> HttpResponse:
    """A profile's evidence and receipts, found by its id (the dashboard's form)."""
    profile_id = request.GET.get("profile", "").strip()
    context: dict[str, Any] = {"profile_id": profile_id, "profile": None}
    if profile_id:
        try:
            profile = profile_get(external_id=profile_id)
        except NotFound:
            profile = None
        context["profile"] = profile
        if profile is not None:
            # a receipt exists only where the person chose (not a default, not nothing)
            context["purposes"] = [
                (c.purpose, PURPOSE_LABELS.get(c.purpose, c.purpose))
                for c in consent_current(profile=profile)
                if c.source == "explicit"
            ]
            context["deletions"] = selectors.deletion_requests_of_profile(profile=profile, limit=20)
    status = 404 if profile_id and context["profile"] is None else 200
    return render(request, "web/officer/evidence.html", context, status=status)


@require_GET
@officer_required
def officer_evidence_download(request: HttpRequest, profile_id: str) -> HttpResponse:
    return _evidence(_any_profile(profile_id))


@require_GET
@officer_required
def officer_consent_receipt(request: HttpRequest, profile_id: str, purpose: str) -> HttpResponse:
    return _consent_receipt(_any_profile(profile_id), purpose)


@require_GET
@officer_required
def officer_deletion_receipt(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        deletion = deletion_request_get(public_id=public_id)
    except NotFound:
        raise Http404("No such deletion request.") from None
    return _deletion_receipt(deletion)
