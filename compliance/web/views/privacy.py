"""The privacy page: a person's own voice profiles, consent, retention and recordings.

Every change goes through the owning app's service, which writes its event and ledger
entry in one transaction; these views translate forms to calls and refusals to forms.
A profile that is not the user's does not exist for them (404), as in the API.
"""

from datetime import datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import get_language, gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST

from compliance.accounts.models import DISPLAY_NAME_MAX, Profile
from compliance.accounts.services import profile_rename
from compliance.actions.consent import consent_set
from compliance.actions.profiles import profile_retention_set
from compliance.consent.models import Channel, Purpose
from compliance.core.errors import ApplicationError, NotFound, field_error
from compliance.edge.callers import actor_of
from compliance.retention.models import DeletionStatus
from compliance.retention.services import deletion_request_create

from .. import selectors
from ..forms import (
    NOTICE_VERSION,
    PURPOSE_EXPLANATIONS,
    PURPOSE_LABELS,
    PURPOSE_SHORT,
    RETENTION_LABELS,
    RETENTION_MEANING,
    ConsentForm,
    DeletionForm,
    RetentionForm,
    end_of_day,
    start_of_day,
)
from ..wording import apply_refusal, page_refusal, refusal_sentence

# A refusal whose message was written for API clients: the page says this instead.
NOT_SAVED = _("That was not saved. Please reload the page and try again.")

# How often the deletion page reloads itself while the deletion runs (no JS needed).
PROGRESS_REFRESH_SECONDS = 2


def _own_profile(request: HttpRequest, profile_id: str) -> Profile:
    try:
        return selectors.profile_of_user(user=request.user, external_id=profile_id)
    except NotFound:
        raise Http404("No such profile.") from None


def _wants_json(request: HttpRequest) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _profile_anchor(profile: Profile) -> str:
    # The top of the page, where the message is; the message names the profile.
    return reverse("web:privacy")


def _profile_name(profile: Profile) -> str:
    if profile.is_child:
        return gettext("the child profile %(name)s") % {"name": profile.name}
    return gettext("the profile %(name)s") % {"name": profile.name}


def _in_sentence(label: str) -> str:
    return label.lower() if get_language() == "en" else label


def _overview_context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    overview = selectors.privacy_overview(user=request.user)
    return {
        "overview": overview,
        "purpose_labels": PURPOSE_LABELS,
        "purpose_explanations": PURPOSE_EXPLANATIONS,
        "retention_choices": [
            (value, RETENTION_LABELS[value], RETENTION_MEANING[value]) for value in RETENTION_LABELS
        ],
        "errors": {},
        "typed_names": {},  # what a refused rename was given, shown again to be mended
        "display_name_max": DISPLAY_NAME_MAX,
        **extra,
    }


@require_GET
@login_required
def privacy(request: HttpRequest) -> HttpResponse:
    return render(request, "web/privacy/index.html", _overview_context(request))


def _consent_message(profile: Profile, purpose: str, granted: bool) -> str:
    name = {"name": _profile_name(profile)}
    if purpose == Purpose.HUMAN_REVIEW:
        if granted:
            return (
                gettext(
                    "Done: people may now listen to recordings of %(name)s. "
                    "You can turn this off again at any time."
                )
                % name
            )
        return (
            gettext(
                "Done: nobody will listen to recordings of %(name)s from now on. "
                "This took effect immediately; clips waiting for a reviewer were withdrawn."
            )
            % name
        )
    if granted:
        return gettext("Done: recordings of %(name)s may now be used for model training.") % name
    return (
        gettext(
            "Done: recordings of %(name)s are no longer used for model training. "
            "This took effect immediately."
        )
        % name
    )


@require_POST
@login_required
def consent_change(request: HttpRequest, profile_id: str, purpose: str) -> HttpResponse:
    profile = _own_profile(request, profile_id)
    if purpose not in Purpose.values:
        raise Http404("No such purpose.")
    form = ConsentForm(request.POST)
    refused: ApplicationError | None = None
    if form.is_valid():
        granted = form.cleaned_data["granted"]
        try:
            consent_set(
                profile=profile,
                purpose=purpose,
                granted=granted,
                channel=Channel.WEB,
                notice_version=NOTICE_VERSION,
                actor=actor_of(request.user),
            )
        except ApplicationError as refusal:
            refused = page_refusal(refusal, fallback=NOT_SAVED)
    else:
        choose = gettext("Choose whether to turn this on or off.")
        refused = ApplicationError(
            "validation_error", choose, fields=field_error("granted", "required", choose)
        )
    if refused is not None:
        if _wants_json(request):
            return JsonResponse(refused.body(), status=400)
        context = _overview_context(
            request, errors={f"{profile.external_id}:{purpose}": refused.message}
        )
        return render(request, "web/privacy/index.html", context, status=400)
    message = _consent_message(profile, purpose, granted)
    if _wants_json(request):
        return JsonResponse({"granted": granted, "message": message})
    messages.success(request, message)
    return redirect(_profile_anchor(profile))


@require_POST
@login_required
def retention_change(request: HttpRequest, profile_id: str) -> HttpResponse:
    profile = _own_profile(request, profile_id)
    form = RetentionForm(request.POST)
    if not form.is_valid():
        context = _overview_context(
            request,
            errors={f"{profile.external_id}:retention": gettext("Choose one of the options.")},
        )
        return render(request, "web/privacy/index.html", context, status=400)
    choice = form.cleaned_data["choice"]
    if choice == profile.retention_choice:
        messages.info(request, gettext("Nothing changed: that is your current choice."))
        return redirect(_profile_anchor(profile))
    now = timezone.now()
    doomed = selectors.recordings_a_choice_would_delete(profile=profile, choice=choice, now=now)
    if doomed and not form.cleaned_data["confirm"]:
        return render(
            request,
            "web/privacy/confirm_retention.html",
            {
                "profile": profile,
                "choice": choice,
                "label": RETENTION_LABELS[choice],
                "meaning": RETENTION_MEANING[choice],
                "doomed": doomed,
            },
        )
    try:
        profile_retention_set(profile=profile, choice=choice, actor=actor_of(request.user))
    except ApplicationError as refusal:
        context = _overview_context(
            request,
            errors={
                f"{profile.external_id}:retention": refusal_sentence(refusal, fallback=NOT_SAVED)
            },
        )
        return render(request, "web/privacy/index.html", context, status=400)
    saved = gettext("Saved: %(choice)s for %(name)s.") % {
        # English writes the choice in the middle of the sentence in lower case;
        # German nouns keep their capitals.
        "choice": _in_sentence(str(RETENTION_LABELS[choice])),
        "name": _profile_name(profile),
    }
    if doomed:
        saved += " " + ngettext(
            "%(count)d older recording will be deleted within minutes.",
            "%(count)d older recordings will be deleted within minutes.",
            doomed,
        ) % {"count": doomed}
    messages.success(request, saved)
    return redirect(_profile_anchor(profile))


@require_POST
@login_required
def profile_rename_view(request: HttpRequest, profile_id: str) -> HttpResponse:
    """The name the person calls a profile by; the pages show it instead of the id."""
    profile = _own_profile(request, profile_id)
    typed = request.POST.get("display_name", "")
    try:
        profile_rename(profile=profile, display_name=typed)
    except ApplicationError:
        if len(" ".join(typed.split())) > DISPLAY_NAME_MAX:
            error = gettext("That name was not saved: it is longer than %(limit)d characters.") % {
                "limit": DISPLAY_NAME_MAX
            }
        else:
            error = gettext(
                "That name was not saved: it holds an invisible control character "
                "(such as one that reverses the text's direction). Type it again without it."
            )
        context = _overview_context(
            request,
            errors={f"{profile.external_id}:rename": error},
            typed_names={profile.external_id: typed},
        )
        return render(request, "web/privacy/index.html", context, status=400)
    if profile.display_name:
        message = gettext("Saved: the profile %(id)s is now called “%(name)s”.") % {
            "id": profile.external_id,
            "name": profile.display_name,
        }
    else:
        message = gettext("Saved: the profile %(id)s is shown by its id again.") % {
            "id": profile.external_id
        }
    messages.success(request, message)
    return redirect(_profile_anchor(profile))


def _recordings_context(
    request: HttpRequest, profile: Profile, form: DeletionForm | None = None
) -> dict[str, Any]:
    page, rows = selectors.recordings_page(profile=profile, page=request.GET.get("page"))
    return {
        "profile": profile,
        "page": page,
        "rows": rows,
        "range_form": form or DeletionForm(initial={"scope": "range"}),
        "requests": selectors.deletion_requests_of_profile(profile=profile),
        "purpose_short": PURPOSE_SHORT,
    }


@require_GET
@login_required
def recordings(request: HttpRequest, profile_id: str) -> HttpResponse:
    profile = _own_profile(request, profile_id)
    return render(request, "web/privacy/recordings.html", _recordings_context(request, profile))


@require_POST
@login_required
def deletion_create(request: HttpRequest, profile_id: str) -> HttpResponse:
    """Two steps without JavaScript: the first POST shows what would go and asks; the
    second (with `confirm`) files the deletion request and shows its progress."""
    profile = _own_profile(request, profile_id)
    form = DeletionForm(request.POST)
    if not form.is_valid():
        context = _recordings_context(request, profile, form)
        return render(request, "web/privacy/recordings.html", context, status=400)
    data = form.cleaned_data
    scope = data["scope"]
    recording = None
    recorded_from: datetime | None
    recorded_to: datetime | None
    if scope == "one":
        try:
            recording = selectors.recording_of_profile(
                profile=profile, external_id=data["recording"]
            )
        except NotFound:
            raise Http404("No such recording.") from None
        # A deletion request covers a time range; one recording's own instant is its range.
        recorded_from = recorded_to = recording.recorded_at
    elif scope == "range":
        recorded_from, recorded_to = start_of_day(data["date_from"]), end_of_day(data["date_to"])
    else:
        recorded_from = recorded_to = None
    affected = selectors.recordings_in_range(
        profile=profile, recorded_from=recorded_from, recorded_to=recorded_to
    )
    if not data["confirm"]:
        return render(
            request,
            "web/privacy/confirm_delete.html",
            {
                "profile": profile,
                "form": form,
                "scope": scope,
                "recording": recording,
                "count": affected.count(),
                "examples": list(affected.order_by("-recorded_at")[:5]),
                "date_from": data.get("date_from"),
                "date_to": data.get("date_to"),
            },
        )
    try:
        request_row = deletion_request_create(
            profile=profile,
            recorded_from=recorded_from,
            recorded_to=recorded_to,
            actor=actor_of(request.user),
        )
    except ApplicationError as refusal:
        apply_refusal(form, refusal)
        context = _recordings_context(request, profile, form)
        return render(request, "web/privacy/recordings.html", context, status=400)
    return redirect("web:deletion", public_id=request_row.public_id)


@require_GET
@login_required
def deletion_status(request: HttpRequest, public_id: str) -> HttpResponse:
    try:
        deletion = selectors.deletion_request_of_user(user=request.user, public_id=public_id)
    except NotFound:
        raise Http404("No such deletion request.") from None
    steps: list[str] = [DeletionStatus.RECEIVED, DeletionStatus.RUNNING, DeletionStatus.DONE]
    done = deletion.status == DeletionStatus.DONE
    response = render(
        request,
        "web/privacy/deletion.html",
        {
            "deletion": deletion,
            "profile": deletion.profile,
            "done": done,
            "step": steps.index(deletion.status) + 1,
            "refresh": PROGRESS_REFRESH_SECONDS,
            # Without JavaScript a <noscript> refresh reloads the page; the reader may
            # stop it (WCAG 2.2.1). With JavaScript, web/deletion.js updates in place.
            "auto_refresh": request.GET.get("updates") != "off",
        },
    )
    return response
