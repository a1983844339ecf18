"""Sign-in and sign-out: the one way in for people (service clients use API keys).

A person with a second factor must give a code from it; officers, reviewers and staff
must have one. Failures are counted per username and address and refused for a while
after too many, before the password is even checked, so the form is no password oracle.
"""

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import auth, messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils.functional import Promise
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods
from django_otp import login as otp_login

from .forms import SignInForm
from .roles import has_officer_role
from .services import has_second_factor, needs_second_factor, second_factor_verify
from .throttling import SignInThrottle, client_address

logger = logging.getLogger(__name__)

BAD_CREDENTIALS = _("The username or password is not correct.")
CODE_MISSING = _(
    "This account signs in with a second factor: enter the code from your authenticator "
    "app, or one of your backup codes."
)
CODE_WRONG = _("The authentication code is not correct, or it has been used already.")
NO_SECOND_FACTOR = _(
    "This account must sign in with a second factor, and none is set up for it. "
    "Ask an administrator to issue one (manage.py create_officer)."
)
THROTTLED = _("Too many failed sign-ins. Wait {minutes} minutes, then try again.")


OFFICER_LANDING = "/officer/"
USER_LANDING = "/privacy/"


@dataclass(frozen=True)
class Refusal:
    reason: str  # stable, for the log
    message: str | Promise  # for the person (translated when shown)
    status: int = 200


def _next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return ""


def _landing(user: Any, device: Any) -> str:
    """Where a sign-in without `next` lands: an officer (signed in with the second
    factor) on the dashboard, everyone else on their privacy page."""
    if device is not None and has_officer_role(user):
        return OFFICER_LANDING
    return USER_LANDING


def _attempt(request: HttpRequest, form: SignInForm) -> tuple[Any, Any] | Refusal:
    """(user, device or None) for good credentials, else why not."""
    username = form.cleaned_data["username"]
    throttle = SignInThrottle(username=username, address=client_address(request))
    if throttle.blocked():
        minutes = max(1, settings.SIGN_IN_FAILURE_WINDOW_SECONDS // 60)
        return Refusal("throttled", THROTTLED.format(minutes=minutes), status=429)
    user = auth.authenticate(request, username=username, password=form.cleaned_data["password"])
    refusal: Refusal | None = None
    device = None
    if user is None:
        refusal = Refusal("bad_credentials", BAD_CREDENTIALS)
    elif has_second_factor(user):
        token = form.cleaned_data["otp_token"]
        if not token.strip():
            refusal = Refusal("code_missing", CODE_MISSING)
        else:
            device = second_factor_verify(user=user, token=token)
            if device is None:
                refusal = Refusal("code_wrong", CODE_WRONG)
    elif needs_second_factor(user):
        refusal = Refusal("no_second_factor", NO_SECOND_FACTOR)
    if refusal is not None:
        throttle.failed()
        return refusal
    throttle.succeeded()
    return user, device


@sensitive_post_parameters("password", "otp_token")
@csrf_protect
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    next_url = _next_url(request)
    error = ""
    status = 200
    if request.method == "POST":
        form = SignInForm(request.POST)
        if form.is_valid():
            outcome = _attempt(request, form)
            if isinstance(outcome, Refusal):
                logger.warning("security.sign_in_refused reason=%s", outcome.reason)
                error, status = str(outcome.message), outcome.status
            else:
                user, device = outcome
                auth.login(request, user)  # a new session key: no fixation
                if device is not None:
                    otp_login(request, device)
                logger.info(
                    "security.sign_in user=%s second_factor=%s", user.pk, device is not None
                )
                return HttpResponseRedirect(next_url or _landing(user, device))
        else:
            error = gettext("Enter your username and password.")
            status = 400
        # never send the password or the code back
        form = SignInForm(initial={"username": request.POST.get("username", "")[:150]})
    else:
        form = SignInForm()
    return render(
        request,
        "security/sign_in.html",
        {"form": form, "error": error, "next": next_url},
        status=status,
    )


@csrf_protect
@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def sign_out(request: HttpRequest) -> HttpResponse:
    """POST signs out (the session and its second factor end together); GET only asks."""
    if request.method != "POST":
        return render(request, "security/sign_out.html")
    was_signed_in = request.user.is_authenticated
    auth.logout(request)
    if was_signed_in:
        messages.info(request, gettext("You have signed out."))
    return HttpResponseRedirect(_next_url(request) or settings.LOGIN_URL)
