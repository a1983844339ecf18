"""The privacy officers' pages: the dashboard, the policy forms, holds and the ledger.

Every page requires a privacy officer signed in with a second factor
(`officer_required`). Forms call the owning apps' services; a refusal comes back on
the form with status 400.
"""

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from compliance.accounts.selectors import profile_get
from compliance.consent.selectors import consent_default_get, consent_defaults_list
from compliance.consent.services import consent_default_create, consent_default_delete
from compliance.core.errors import ApplicationError, NotFound
from compliance.edge.callers import actor_of
from compliance.ledger.selectors import ledger_status, verification_run_unacknowledged
from compliance.ledger.services import ACKNOWLEDGEMENT_REASON_MAX, ledger_verification_request
from compliance.ledger.services import ledger_acknowledge as ledger_acknowledge_finding
from compliance.retention.reports import retention_report
from compliance.retention.selectors import (
    is_valid_jurisdiction,
    legal_hold_get,
    legal_holds_list,
    retention_policies_list,
    retention_policy_get,
    retention_policy_preview,
)
from compliance.retention.services import (
    legal_hold_place,
    legal_hold_release,
    retention_policy_create,
    retention_policy_retire,
)
from compliance.security.decorators import officer_required
from compliance.transfers.selectors import transfer_rule_get, transfer_rules_list
from compliance.transfers.services import transfer_rule_create, transfer_rule_delete

from .. import charts, selectors
from ..dashboard import REPORTS, dashboard_charts
from ..forms import (
    PURPOSE_SHORT,
    ConsentDefaultForm,
    LegalHoldForm,
    PolicyForm,
    TransferRuleForm,
    end_of_day,
    start_of_day,
)
from ..wording import (
    actor_name,
    actor_names,
    apply_refusal,
    consent_default_words,
    country,
    ledger_kind_choices,
    policy_words,
    sentence_start,
    transfer_rule_words,
)


def _or_404(getter: Callable[..., Any], **kwargs: Any) -> Any:
    try:
        return getter(**kwargs)
    except NotFound as missing:
        raise Http404(missing.message) from None


@require_GET
@officer_required
def dashboard(request: HttpRequest) -> HttpResponse:
    now = timezone.now()
    report = retention_report(now=now)
    return render(
        request,
        "web/officer/dashboard.html",
        {
            "report": report,
            "charts": dashboard_charts(report=report, now=now),
            "oldest_overdue": charts.duration(report["purge_lag"]["oldest_overdue_seconds"])
            if report["overdue_artefacts"]
            else None,
            "lag_worst": "\u2013"
            if report["purge_lag"]["max_seconds"] is None
            else charts.duration(report["purge_lag"]["max_seconds"]),
            "reports": list(REPORTS.items()),
            "deletions": selectors.deletion_requests_open(),
            "holds": list(legal_holds_list()[:50]),
            "now": now,
        },
    )


# --- retention policies ------------------------------------------------------------------


def _policies_context(form: PolicyForm, preview: dict[str, Any] | None = None) -> dict[str, Any]:
    preview_chart = None
    if preview and preview["purged_later_by_month"]:
        months = preview["purged_later_by_month"]
        preview_chart = charts.bar_chart(
            slug="preview",
            title="Purged later, by month",
            description="Artefacts that exist now and this policy would purge in each month "
            "of its first year.",
            x_axis="Month",
            y_axis="Artefacts",
            x_labels=[m["month"] for m in months],
            values=[m["artefacts"] for m in months],
            fmt=charts.count,
            color=charts.PALETTE[1],
        )
    return {
        "form": form,
        "preview": preview,
        "preview_chart": preview_chart,
        "policies": _with_status(list(retention_policies_list(include_retired=True)[:500])),
    }


def _with_status(policies: list[Any]) -> list[tuple[Any, str]]:
    """Each version with what it is now: in force, scheduled, superseded or retired.
    The list comes per key, newest version first."""
    now = timezone.now()
    seen_in_force: set[tuple[str, str, str]] = set()
    result = []
    for policy in policies:
        key = (policy.jurisdiction, policy.category, policy.applies_to)
        if policy.retired_at is not None:
            status = "retired"
        elif policy.effective_from > now:
            status = "scheduled"
        elif key in seen_in_force:
            status = "superseded"
        else:
            status = "in force"
            seen_in_force.add(key)
        result.append((policy, status))
    return result


@require_http_methods(["GET", "POST"])
@officer_required
def policies(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return render(request, "web/officer/policies.html", _policies_context(PolicyForm()))
    form = PolicyForm(request.POST)
    if not form.is_valid():
        return render(request, "web/officer/policies.html", _policies_context(form), status=400)
    data = form.cleaned_data
    now = timezone.now()
    try:
        if request.POST.get("action") == "preview":
            if not is_valid_jurisdiction(data["jurisdiction"]):
                form.add_error("jurisdiction", "A country code, a group (EU, EEA) or *.")
                context = _policies_context(form)
                return render(request, "web/officer/policies.html", context, status=400)
            preview = retention_policy_preview(
                jurisdiction=data["jurisdiction"],
                category=data["category"],
                applies_to=data["applies_to"],
                retention_days=data["retention_days"],
                effective_from=data["effective_from"] or now,
                now=now,
            )
            return render(request, "web/officer/policies.html", _policies_context(form, preview))
        policy = retention_policy_create(
            jurisdiction=data["jurisdiction"],
            category=data["category"],
            applies_to=data["applies_to"],
            retention_days=data["retention_days"],
            effective_from=data["effective_from"],
            actor=actor_of(request.user),
        )
    except ApplicationError as refusal:
        apply_refusal(form, refusal)
        return render(request, "web/officer/policies.html", _policies_context(form), status=400)
    messages.success(
        request,
        gettext("Policy created: %(policy)s. The recordings it covers are being rescheduled.")
        % {"policy": policy_words(policy)},
    )
    return redirect("web:officer-policies")


@require_POST
@officer_required
def policy_retire(request: HttpRequest, pk: int) -> HttpResponse:
    policy = _or_404(retention_policy_get, pk=pk)
    policy = retention_policy_retire(policy=policy, actor=actor_of(request.user))
    messages.success(
        request,
        gettext("Retired: %(policy)s, and the versions before it.")
        % {"policy": policy_words(policy)},
    )
    return redirect("web:officer-policies")


def _show_or_create(
    request: HttpRequest,
    *,
    form_class: type[forms.Form],
    page: Callable[..., HttpResponse],
    create: Callable[..., Any],
    done: Callable[[Any], str],
    back_to: str,
) -> HttpResponse:
    """A list page with its form: GET shows it; POST creates through `create` (the
    form's fields and the officer as actor), then says `done` and goes `back_to` the
    page. An invalid form or a refusal shows the page again with the errors (400)."""
    if request.method == "GET":
        return page(request, form_class())
    form = form_class(request.POST)
    if not form.is_valid():
        return page(request, form, status=400)
    try:
        created = create(**form.cleaned_data, actor=actor_of(request.user))
    except ApplicationError as refusal:
        apply_refusal(form, refusal)
        return page(request, form, status=400)
    messages.success(request, done(created))
    return redirect(back_to)


# --- consent defaults ----------------------------------------------------------------------


def _defaults_page(
    request: HttpRequest, form: ConsentDefaultForm, status: int = 200
) -> HttpResponse:
    return render(
        request,
        "web/officer/consent_defaults.html",
        {
            "form": form,
            "defaults": (defaults := list(consent_defaults_list())),
            "purpose_short": PURPOSE_SHORT,
            "actors": actor_names(d.created_by for d in defaults),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@officer_required
def consent_defaults(request: HttpRequest) -> HttpResponse:
    return _show_or_create(
        request,
        form_class=ConsentDefaultForm,
        page=_defaults_page,
        create=consent_default_create,
        done=lambda default: f"{consent_default_words(default)}.",
        back_to="web:officer-consent-defaults",
    )


@require_POST
@officer_required
def consent_default_remove(request: HttpRequest, pk: int) -> HttpResponse:
    default = _or_404(consent_default_get, pk=pk)
    consent_default_delete(default=default, actor=actor_of(request.user))
    purpose = PURPOSE_SHORT.get(default.purpose, default.purpose)
    messages.success(
        request,
        gettext("Default removed. %(where)s: %(purpose)s is now off until each user turns it on.")
        % {"where": sentence_start(country(default.jurisdiction)), "purpose": purpose},
    )
    return redirect("web:officer-consent-defaults")


# --- transfer rules ------------------------------------------------------------------------


def _rules_page(request: HttpRequest, form: TransferRuleForm, status: int = 200) -> HttpResponse:
    return render(
        request,
        "web/officer/transfer_rules.html",
        {
            "form": form,
            "rules": (rules := list(transfer_rules_list())),
            "actors": actor_names(r.created_by for r in rules),
        },
        status=status,
    )


@require_http_methods(["GET", "POST"])
@officer_required
def transfer_rules(request: HttpRequest) -> HttpResponse:
    return _show_or_create(
        request,
        form_class=TransferRuleForm,
        page=_rules_page,
        create=transfer_rule_create,
        done=lambda rule: (
            gettext("Transfer rule added: %(rule)s.") % {"rule": transfer_rule_words(rule)}
        ),
        back_to="web:officer-transfer-rules",
    )


@require_POST
@officer_required
def transfer_rule_remove(request: HttpRequest, pk: int) -> HttpResponse:
    rule = _or_404(transfer_rule_get, pk=pk)
    transfer_rule_delete(rule=rule, actor=actor_of(request.user))
    messages.success(
        request,
        gettext(
            "Transfer rule removed: recordings from %(from)s may no longer be reviewed in %(in)s."
        )
        % {"from": country(rule.jurisdiction), "in": country(rule.reviewer_location)},
    )
    return redirect("web:officer-transfer-rules")


# --- legal holds ---------------------------------------------------------------------------


def _holds_page(request: HttpRequest, form: LegalHoldForm, status: int = 200) -> HttpResponse:
    show_released = request.GET.get("released") == "1"
    return render(
        request,
        "web/officer/holds.html",
        {
            "form": form,
            "holds": (hold_list := list(legal_holds_list(include_released=show_released)[:200])),
            "actors": actor_names(h.created_by for h in hold_list),
            "show_released": show_released,
        },
        status=status,
    )


HOLD_SEARCH_QUERY_MAX = 200


@require_http_methods(["GET", "POST"])
@officer_required
def holds(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        # The search's links fill the form through the query string.
        initial = {
            name: request.GET[name][:128]
            for name in ("scope", "target")
            if isinstance(request.GET.get(name), str)
        }
        if initial.get("scope") not in (None, "account", "profile"):
            del initial["scope"]
        return _holds_page(request, LegalHoldForm(initial=initial))
    form = LegalHoldForm(request.POST)
    if not form.is_valid():
        return _holds_page(request, form, status=400)
    data = form.cleaned_data
    target: dict[str, Any] = {}
    try:
        if data["scope"] == "account":
            target["account"] = selectors.account_by_external_id(external_id=data["target"])
        else:
            target["profile"] = profile_get(external_id=data["target"])
    except NotFound as missing:
        form.add_error("target", missing.message)
        return _holds_page(request, form, status=400)
    try:
        hold = legal_hold_place(
            **target,
            recorded_from=start_of_day(data["date_from"]),
            recorded_to=end_of_day(data["date_to"]),
            reason=data["reason"],
            case_reference=data["case_reference"],
            actor=actor_of(request.user),
        )
    except ApplicationError as refusal:
        apply_refusal(form, refusal)
        return _holds_page(request, form, status=400)
    held = (
        gettext("account %(id)s") % {"id": hold.account.external_id}
        if hold.account is not None
        else gettext("profile %(id)s") % {"id": hold.profile.external_id}
        if hold.profile is not None
        else gettext("its scope")
    )
    messages.success(
        request,
        gettext(
            "Legal hold placed for case %(case)s on %(held)s: its recordings are kept from "
            "every deletion until the hold is released."
        )
        % {"case": hold.case_reference, "held": held},
    )
    return redirect("web:officer-holds")


@require_GET
@officer_required
def hold_targets(request: HttpRequest) -> HttpResponse:
    """Find the account or profile a hold is for, by external id, email or username."""
    query = request.GET.get("q", "")[:HOLD_SEARCH_QUERY_MAX]
    return render(
        request,
        "web/officer/hold_targets.html",
        {
            "found": selectors.hold_targets_search(query=query),
            "query_max": HOLD_SEARCH_QUERY_MAX,
        },
    )


@require_POST
@officer_required
def hold_release(request: HttpRequest, pk: int) -> HttpResponse:
    hold = _or_404(legal_hold_get, pk=pk)
    hold = legal_hold_release(hold=hold, actor=actor_of(request.user))
    messages.success(
        request,
        gettext("Hold %(case)s released; what it kept is purged when it is due.")
        % {"case": hold.case_reference},
    )
    return redirect("web:officer-holds")


# --- the ledger ----------------------------------------------------------------------------


class LedgerAcknowledgeForm(forms.Form):
    """An officer's acknowledgement of the broken finding the page showed them."""

    run = forms.IntegerField(widget=forms.HiddenInput, min_value=1)
    reason = forms.CharField(
        max_length=ACKNOWLEDGEMENT_REASON_MAX,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 3}),
        label=_("Reason"),
        help_text=_("What happened, and why the chain as it is now may be trusted from here."),
    )


def _ledger_page(
    request: HttpRequest, acknowledge_form: LedgerAcknowledgeForm | None = None, status: int = 200
) -> HttpResponse:
    kind = request.GET.get("kind", "")
    ledger_state = ledger_status()
    standing = ledger_state.unacknowledged
    if acknowledge_form is None and standing is not None:
        acknowledge_form = LedgerAcknowledgeForm(initial={"run": standing.pk})
    return render(
        request,
        "web/officer/ledger.html",
        {
            "status": ledger_state,
            "acknowledge_form": acknowledge_form,
            "verify_every": charts.duration(settings.LEDGER_VERIFY_EVERY_SECONDS),
            "page": selectors.ledger_entries(page=request.GET.get("page"), kind=kind),
            "kinds": ledger_kind_choices(selectors.ledger_kinds()),
            "kind": kind,
        },
        status=status,
    )


@require_GET
@officer_required
def ledger(request: HttpRequest) -> HttpResponse:
    """The chain as the full verifications found it, and the entries appended since the
    reference checked now: cheap however long the ledger, since only those are
    re-hashed. A broken finding stays on the page until an officer acknowledges it."""
    return _ledger_page(request)


@require_POST
@officer_required
def ledger_acknowledge(request: HttpRequest) -> HttpResponse:
    form = LedgerAcknowledgeForm(request.POST)
    if not form.is_valid():
        return _ledger_page(request, form, status=400)
    try:
        acknowledgement = ledger_acknowledge_finding(
            run_id=form.cleaned_data["run"],
            reason=form.cleaned_data["reason"],
            actor=actor_of(request.user),
        )
    except ApplicationError as refusal:
        standing = verification_run_unacknowledged()
        if standing is not None and standing.pk != form.cleaned_data["run"]:
            # A newer finding came in meanwhile: the form now offers that one, the
            # reason kept, so that a second submit acknowledges what the page shows.
            form = LedgerAcknowledgeForm(
                {"run": standing.pk, "reason": form.cleaned_data["reason"]}
            )
            form.is_valid()
        apply_refusal(form, refusal)
        return _ledger_page(request, form, status=400)
    messages.success(
        request,
        gettext(
            "Acknowledged, and recorded as ledger entry #%(seq)s. Later full verifications "
            "are held against the chain as it stands now."
        )
        % {"seq": acknowledgement.through_seq},
    )
    return redirect("web:officer-ledger")


@require_POST
@officer_required
def ledger_verify(request: HttpRequest) -> HttpResponse:
    run, new = ledger_verification_request(requested_by=actor_of(request.user))
    if new:
        messages.success(
            request,
            gettext("A full verification of the chain has started. Reload this page to follow it."),
        )
    else:
        messages.info(
            request,
            gettext(
                "A full verification is already running (asked for by %(who)s at %(when)s "
                "UTC); this page shows its progress."
            )
            % {
                "who": actor_name(run.requested_by),
                "when": f"{run.requested_at:%Y-%m-%d %H:%M:%S}",
            },
        )
    return redirect("web:officer-ledger")
