"""The officers' webhooks page: the partner systems Earshot tells of changes, how their
deliveries go, deletions they have not confirmed, and the forms to add, disable and
replay a subscription. The services are the API's (compliance/webhooks/services.py)."""

from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_http_methods, require_POST

from compliance.core.errors import ApplicationError, NotFound
from compliance.edge.callers import actor_of
from compliance.security.decorators import officer_required
from compliance.webhooks.events import EVENT_TYPES, event_types_parse
from compliance.webhooks.models import Subscription
from compliance.webhooks.selectors import (
    deletions_unconfirmed,
    subscription_get,
    subscriptions_failing,
    subscriptions_overview,
)
from compliance.webhooks.services import (
    subscription_create,
    subscription_disable,
    subscription_replay,
)

from ..charts import duration
from ..wording import apply_refusal, refusal_sentence, webhook_event

_EVENT_CHOICES: list[tuple[str, Any]] = [("*", _("Every event"))] + [
    (name, webhook_event(name)) for name in EVENT_TYPES if name != "webhook.ping"
]


class SubscriptionForm(forms.Form):
    url = forms.CharField(
        max_length=2000,
        label=_("Receiver URL"),
        help_text=_("An https address on the public internet; Earshot signs every delivery."),
    )
    events = forms.MultipleChoiceField(
        choices=_EVENT_CHOICES,
        widget=forms.CheckboxSelectMultiple,
        initial=["*"],
        label=_("Events"),
    )
    description = forms.CharField(max_length=500, required=False, label=_("Description"))
    holds_copies = forms.BooleanField(
        required=False,
        label=_("Holds copies of recordings"),
        help_text=_("It must confirm each deletion; unconfirmed ones become an alert."),
    )


def _page(
    request: HttpRequest,
    form: SubscriptionForm,
    *,
    created: tuple[Subscription, str] | None = None,
    status: int = 200,
) -> HttpResponse:
    unconfirmed = deletions_unconfirmed()
    context: dict[str, Any] = {
        "form": form,
        "subscriptions": subscriptions_overview(),
        "unconfirmed": unconfirmed,
        "alert_after": duration(unconfirmed["after_seconds"]),
        "failing": subscriptions_failing(),
        "created": created[0] if created else None,
        "secret": created[1] if created else None,
    }
    response = render(request, "web/officer/webhooks.html", context, status=status)
    if created:
        response["Cache-Control"] = "no-store"  # the secret is shown this once
    return response


def _subscription_or_404(external_id: str) -> Subscription:
    try:
        return subscription_get(external_id=external_id)
    except NotFound as missing:
        raise Http404(missing.message) from None


@require_http_methods(["GET", "POST"])
@officer_required
def webhooks(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return _page(request, SubscriptionForm())
    form = SubscriptionForm(request.POST)
    if not form.is_valid():
        return _page(request, form, status=400)
    try:
        created = subscription_create(
            url=form.cleaned_data["url"],
            events=event_types_parse(form.cleaned_data["events"]),
            description=form.cleaned_data["description"],
            holds_copies=form.cleaned_data["holds_copies"],
            actor=actor_of(request.user),
        )
    except ApplicationError as refusal:
        apply_refusal(form, refusal)
        return _page(request, form, status=400)
    return _page(request, SubscriptionForm(), created=created, status=201)


@require_POST
@officer_required
def webhook_replay(request: HttpRequest, external_id: str) -> HttpResponse:
    subscription = _subscription_or_404(external_id)
    try:
        replayed = subscription_replay(subscription=subscription, actor=actor_of(request.user))
    except ApplicationError as refusal:
        messages.error(request, refusal_sentence(refusal, fallback=refusal.message))
        return redirect("web:officer-webhooks")
    messages.success(
        request,
        ngettext(
            "%(name)s is active again; %(count)d failed delivery goes out again, in their order.",
            "%(name)s is active again; %(count)d failed deliveries go out again, in their order.",
            replayed,
        )
        % {"name": subscription.description or subscription.external_id, "count": replayed},
    )
    return redirect("web:officer-webhooks")


@require_POST
@officer_required
def webhook_disable(request: HttpRequest, external_id: str) -> HttpResponse:
    subscription = _subscription_or_404(external_id)
    subscription_disable(subscription=subscription, actor=actor_of(request.user))
    messages.success(
        request,
        gettext("%(name)s is disabled: it is sent nothing until an officer replays it.")
        % {"name": subscription.description or subscription.external_id},
    )
    return redirect("web:officer-webhooks")
