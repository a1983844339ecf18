"""How the pages name things for people: countries instead of codes, durations instead
of day counts, usernames instead of actor ids, and the officers' success messages.

The ledger and the services keep codes and ids; these words are made when a page shows
them, so a renamed user or a better country name never rewrites history."""

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import formats
from django.utils.text import format_lazy
from django.utils.translation import get_language, gettext, ngettext, pgettext, pgettext_lazy
from django.utils.translation import gettext_lazy as _

from compliance.core.errors import ApplicationError, FieldError

from .charts import duration as charts_duration

COUNTRY_NAMES: dict[str, Any] = {
    "AT": _("Austria"), "AU": _("Australia"), "BE": _("Belgium"), "BG": _("Bulgaria"),
    "BR": _("Brazil"), "CA": _("Canada"), "CH": _("Switzerland"), "CN": _("China"),
    "CY": _("Cyprus"), "CZ": _("the Czech Republic"), "DE": _("Germany"), "DK": _("Denmark"),
    "EE": _("Estonia"), "ES": _("Spain"), "FI": _("Finland"), "FR": _("France"),
    "GB": _("the United Kingdom"), "GR": _("Greece"), "HR": _("Croatia"), "HU": _("Hungary"),
    "IE": _("Ireland"), "IL": _("Israel"), "IN": _("India"), "IS": _("Iceland"), "IT": _("Italy"),
    "JP": _("Japan"), "KR": _("South Korea"), "LI": _("Liechtenstein"), "LT": _("Lithuania"),
    "LU": _("Luxembourg"), "LV": _("Latvia"), "MT": _("Malta"), "MX": _("Mexico"),
    "NL": _("the Netherlands"), "NO": _("Norway"), "NZ": _("New Zealand"),
    "PH": _("the Philippines"), "PL": _("Poland"), "PT": _("Portugal"), "RO": _("Romania"),
    "SE": _("Sweden"), "SG": _("Singapore"), "SI": _("Slovenia"), "SK": _("Slovakia"),
    "TR": _("Turkey"), "UA": _("Ukraine"), "US": _("the United States"), "ZA": _("South Africa"),
}  # fmt: skip

GROUP_NAMES: dict[str, Any] = {"EU": _("the EU"), "EEA": _("the EEA"), "*": _("everywhere")}

PURPOSE_WORDS: dict[str, Any] = {
    "human_review": _("human review"),
    "model_training": _("model training"),
}
CATEGORY_WORDS: dict[str, Any] = {"audio": _("audio"), "transcript": _("transcripts")}

# Actors that are not users: what the pages call them.
SYSTEM_ACTORS: dict[str, Any] = {
    "schedule": _("the schedule"),
    "command": "manage.py verify_ledger",
    "system": "Earshot",
    "anonymous": _("someone not signed in"),
}


def country(code: str) -> str:
    """A jurisdiction as a person reads it; an unknown code stays as it is."""
    return str(GROUP_NAMES.get(code) or COUNTRY_NAMES.get(code, code))


def sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def duration(days: int) -> str:
    """A retention period in the unit people use: "18 months", "2 years", "30 days"."""
    if days == 0:
        return gettext("not at all")
    if days % 365 == 0:
        years = days // 365
        return ngettext("%(n)d year", "%(n)d years", years) % {"n": years}
    if days % 30 == 0 or days in (90, 180, 540):
        months = round(days / 30)
        return ngettext("%(n)d month", "%(n)d months", months) % {"n": months}
    if days % 7 == 0 and days < 70:
        weeks = days // 7
        return ngettext("%(n)d week", "%(n)d weeks", weeks) % {"n": weeks}
    return ngettext("%(n)d day", "%(n)d days", days) % {"n": days}


def actor_names(actors: Iterable[str]) -> dict[str, str]:
    """Each actor id as a page names it, with one query for all the users among them:
    "user:12" becomes that user's username, "schedule" "the schedule"; a service
    client's actor and anything unknown stay as recorded."""
    actors = set(actors)
    names = {actor: str(SYSTEM_ACTORS.get(actor, actor)) for actor in actors}
    ids = {
        int(actor.removeprefix("user:")): actor
        for actor in actors
        if actor.startswith("user:") and actor.removeprefix("user:").isdigit()
    }
    if ids:
        users = get_user_model().objects.filter(pk__in=ids).only("pk", "username")
        for user in users:
            names[ids[user.pk]] = user.get_username()
    for actor in ids.values():
        if names[actor] == actor:
            names[actor] = gettext("a user who no longer exists")
    return names


def actor_name(actor: str) -> str:
    return actor_names([actor])[actor]


def policy_words(policy: Any) -> str:
    """ "Germany, audio of children: kept 18 months (version 2)"."""
    words = {
        "where": sentence_start(country(policy.jurisdiction)),
        "what": CATEGORY_WORDS.get(policy.category, policy.category),
        "kept": duration(policy.retention_days),
        "version": policy.version,
        "whom": policy.applies_to,
    }
    if policy.applies_to == "adults":
        return gettext("%(where)s, %(what)s of adults: kept %(kept)s (version %(version)s)") % words
    if policy.applies_to == "children":
        return (
            gettext("%(where)s, %(what)s of children: kept %(kept)s (version %(version)s)") % words
        )
    if policy.applies_to == "all":
        return gettext("%(where)s, %(what)s: kept %(kept)s (version %(version)s)") % words
    return gettext("%(where)s, %(what)s (%(whom)s): kept %(kept)s (version %(version)s)") % words


def consent_default_words(default: Any) -> str:
    """ "France: model training is now off by default"."""
    words = {
        "where": sentence_start(country(default.jurisdiction)),
        "purpose": PURPOSE_WORDS.get(default.purpose, default.purpose),
    }
    if default.granted:
        return gettext("%(where)s: %(purpose)s is now on by default") % words
    return gettext("%(where)s: %(purpose)s is now off by default") % words


def transfer_rule_words(rule: Any) -> str:
    return gettext("recordings from %(from)s may be reviewed in %(in)s") % {
        "from": country(rule.jurisdiction),
        "in": country(rule.reviewer_location),
    }


# --- refusals on the forms -------------------------------------------------------------
# The services refuse with a stable code, a message written for API clients (it may
# name a JSON field in backticks) and per-field problems, each a code and a sentence
# (docs/domain.md, "Errors"). A page shows sentences only, never a code, naming the
# form's own fields; where the page has better words for a field's problem than the
# API's sentence, it says those.

REFUSAL_SENTENCES: dict[str, Any] = {
    "invalid_range": _("That was not saved: the first day lies after the last day."),
    "unknown_jurisdiction": _("That was not saved: the country code is not one we know."),
    "unknown_location": _("That was not saved: the country code is not one we know."),
}

# The services name some fields as the API does; the forms name them for people.
FORM_FIELDS = {"from": "date_from", "to": "date_to", "account": "target", "profile": "target"}

# (field, problem code) -> what the form says instead of the API's sentence.
FIELD_SENTENCES: dict[tuple[str, str], Any] = {
    ("from", "after_to"): _("The first day must be on or before the last day."),
    ("to", "before_from"): _("The last day must be on or after the first day."),
    ("jurisdiction", "unknown"): _("Use a two-letter country code, such as DE or US."),
    ("reviewer_location", "unknown"): _("Use a two-letter country code, such as IE or US."),
    ("purpose", "unknown"): _("Choose one of the purposes in the list."),
    ("account", "unknown"): _("There is no account with this id. Use the search to find it."),
    ("profile", "unknown"): _("There is no profile with this id. Use the search to find it."),
    ("account", "one_target"): _("Give the id of an account or a profile."),
    ("profile", "one_target"): _("Give the id of an account or a profile."),
}
# problem code -> the page's words when the API's sentence has no translation.
GENERIC_FIELD_SENTENCES: dict[str, Any] = {
    "required": _("This field is required."),
    "unknown": _("This value is not one we know."),
}


def _is_sentence(text: str) -> bool:
    return text[:1].isupper() and text.rstrip().endswith((".", "?", "!")) and "`" not in text


FIELDS_BELOW = _("That was not saved: please check the fields marked below.")


def refusal_sentence(error: ApplicationError, *, fallback: Any = FIELDS_BELOW) -> str:
    """A service's refusal as one sentence for a form's reader; `fallback` when the
    service's message was written for an API client. A service's sentence is shown in
    the reader's language when the catalogue has it; otherwise the page's own sentence
    for its code, if there is one, rather than English on a German page."""
    message = str(error.message)
    if _is_sentence(message):
        translated = gettext(message)
        if translated != message or error.code not in REFUSAL_SENTENCES:
            return translated
        if get_language() in (None, "en"):
            return message
    if error.code in REFUSAL_SENTENCES:
        return str(REFUSAL_SENTENCES[error.code])
    return str(fallback)


def field_sentence(field: str, problem: FieldError) -> str:
    """One field's problem as the form says it: the page's own words where it has
    them, else the API's sentence (in the reader's language when the catalogue has it,
    else the page's words for its code rather than English on a German page); never
    the code."""
    if (field, problem.code) in FIELD_SENTENCES:
        return str(FIELD_SENTENCES[(field, problem.code)])
    if _is_sentence(problem.message):
        translated = gettext(problem.message)
        if translated != problem.message or problem.code not in GENERIC_FIELD_SENTENCES:
            return translated
        if get_language() in (None, "en"):
            return problem.message
    if problem.code in GENERIC_FIELD_SENTENCES:
        return str(GENERIC_FIELD_SENTENCES[problem.code])
    return gettext("Please check this value.")


def page_refusal(error: ApplicationError, *, fallback: Any = FIELDS_BELOW) -> ApplicationError:
    """The same refusal in the pages' words, for a page's JSON answer: the envelope of
    the API (same code, same fields' codes), with sentences a person can read."""
    fields = {
        name: [FieldError(p.code, field_sentence(name, p)) for p in problems]
        for name, problems in error.fields.items()
    }
    return ApplicationError(error.code, refusal_sentence(error, fallback=fallback), fields=fields)


def apply_refusal(form: Any, error: ApplicationError) -> None:
    """Put a service's refusal on the form, in sentences: the refusal above the form and
    each field's complaint on the field when the form has it (once per field). Where the
    refusal's sentence is a field's own, the form says it once, on the field, and
    points there from above."""
    on_fields = [
        (target, field_sentence(name, problem))
        for name, problems in error.fields.items()
        if (target := FORM_FIELDS.get(name, name)) in form.fields
        for problem in problems
    ]
    summary = refusal_sentence(error)
    if summary in {sentence for _, sentence in on_fields}:
        summary = str(FIELDS_BELOW)
    form.add_error(None, summary)
    for target, sentence in on_fields:
        if sentence not in form.errors.get(target, []):
            form.add_error(target, sentence)


# --- the ledger page ---------------------------------------------------------------------
# The ledger keeps kinds and payloads as codes; its page says what happened in words and
# keeps the code beside them, since officers search the ledger by kind.

LEDGER_KIND_LABELS: dict[str, Any] = {
    "account.created": _("Account created"),
    "profile.created": _("Profile created"),
    "consent.granted": _("Consent given"),
    "consent.withdrawn": _("Consent withdrawn"),
    "consent.changed": _("Consent changed"),
    "consent_default.created": _("Consent default set"),
    "consent_default.deleted": _("Consent default removed"),
    "retention_choice.changed": _("Retention choice changed"),
    "retention_policy.created": _("Retention policy added"),
    "retention_policy.retired": _("Retention policy retired"),
    "legal_hold.placed": _("Legal hold placed"),
    "legal_hold.released": _("Legal hold released"),
    "deletion_request.received": _("Deletion requested"),
    "deletion_request.done": _("Deletion request carried out"),
    "deletion_request.completed": _("Deletion request carried out"),
    "purge.batch": _("Recordings purged"),
    "purge.skipped_held": _("Purge held back by a legal hold"),
    "recording.purged": _("Recording purged"),
    "recordings.registered": _("Recordings registered"),
    "storage.swept": _("Storage swept"),
    "storage.sweep_refused": _("Storage sweep refused a mass change"),
    "sample.drawn": _("Review sample drawn"),
    "reviewer.created": _("Reviewer added"),
    "review_item.accessed": _("Clip opened for review"),
    "review_item.refused": _("Clip access refused"),
    "review_item.revoked": _("Review item revoked"),
    "review_items.revoked": _("Review items revoked"),
    "review_items.expired": _("Review items expired"),
    "transfer_rule.created": _("Transfer rule added"),
    "transfer_rule.deleted": _("Transfer rule removed"),
    "ledger.acknowledged": _("Verification finding acknowledged"),
    "security.second_factor_issued": _("Second factor issued"),
    "service_client.created": _("Service client created"),
    "service_client.revoked": _("Service client revoked"),
    "webhook_subscription.created": _("Webhook subscribed"),
    "webhook_subscription.updated": _("Webhook changed"),
    "webhook_subscription.secret_rotated": _("Webhook secret rotated"),
    "webhook_subscription.status_changed": _("Webhook status changed"),
    "webhook.confirmed": _("Webhook deliveries confirmed"),
}

# payload key -> the page's words for it; a key not here is shown as recorded. Short
# words ("from", "case") in their own context, so that their German is chosen for here.
LEDGER_KEY_WORDS: dict[str, Any] = {
    "account": pgettext_lazy("ledger detail", "account"),
    "acknowledgement": pgettext_lazy("ledger detail", "acknowledgement"),
    "artefacts": pgettext_lazy("ledger detail", "artefacts"),
    "audio": pgettext_lazy("ledger detail", "audio"),
    "case_reference": pgettext_lazy("ledger detail", "case"),
    "category": pgettext_lazy("ledger detail", "category"),
    "channel": pgettext_lazy("ledger detail", "channel"),
    "count": pgettext_lazy("ledger detail", "count"),
    "created_at": pgettext_lazy("ledger detail", "created"),
    "decided_at": pgettext_lazy("ledger detail", "decided"),
    "deleted": pgettext_lazy("ledger detail", "deleted"),
    "effective_from": pgettext_lazy("ledger detail", "effective from"),
    "event": pgettext_lazy("ledger detail", "event"),
    "event_ids": pgettext_lazy("ledger detail", "events"),
    "events": pgettext_lazy("ledger detail", "events"),
    "external_ids_sha256": pgettext_lazy("ledger detail", "external ids (hash)"),
    "files_checked": pgettext_lazy("ledger detail", "files checked"),
    "first": pgettext_lazy("ledger detail", "first"),
    "first_artefact": pgettext_lazy("ledger detail", "first artefact"),
    "from": pgettext_lazy("ledger detail", "from"),
    "granted": pgettext_lazy("ledger detail", "on"),
    "held": pgettext_lazy("ledger detail", "held"),
    "holds": pgettext_lazy("ledger detail", "holds"),
    "holds_copies": pgettext_lazy("ledger detail", "keeps copies"),
    "is_child": pgettext_lazy("ledger detail", "child"),
    "jurisdiction": pgettext_lazy("ledger detail", "country"),
    "last": pgettext_lazy("ledger detail", "last"),
    "last_artefact": pgettext_lazy("ledger detail", "last artefact"),
    "mass_change_allowed": pgettext_lazy("ledger detail", "mass change allowed by an operator"),
    "max_lag_ms": pgettext_lazy("ledger detail", "longest lag"),
    "notice_version": pgettext_lazy("ledger detail", "notice version"),
    "orphan_files_deleted": pgettext_lazy("ledger detail", "orphan files deleted"),
    "orphan_files_found": pgettext_lazy("ledger detail", "orphan files found"),
    "orphan_limit": pgettext_lazy("ledger detail", "most orphan files deleted unasked"),
    "orphans_refused": pgettext_lazy("ledger detail", "orphan files left (mass change)"),
    "policies": pgettext_lazy("ledger detail", "policies"),
    "previous_until": pgettext_lazy("ledger detail", "previous secret valid until"),
    "problem": pgettext_lazy("ledger detail", "problem"),
    "problem_seq": pgettext_lazy("ledger detail", "at entry"),
    "profile": pgettext_lazy("ledger detail", "profile"),
    "purpose": pgettext_lazy("ledger detail", "purpose"),
    "reason": pgettext_lazy("ledger detail", "reason"),
    "reasons": pgettext_lazy("ledger detail", "reasons"),
    "recordings": pgettext_lazy("ledger detail", "recordings"),
    "request": pgettext_lazy("ledger detail", "request"),
    "retention_days": pgettext_lazy("ledger detail", "kept"),
    "rows_checked": pgettext_lazy("ledger detail", "rows checked"),
    "rows_found_without_file": pgettext_lazy("ledger detail", "rows found without a file"),
    "rows_limit": pgettext_lazy("ledger detail", "most rows settled unasked"),
    "rows_refused": pgettext_lazy("ledger detail", "rows left (mass change)"),
    "rows_without_file": pgettext_lazy("ledger detail", "rows without a file"),
    "runs": pgettext_lazy("ledger detail", "verifications"),
    "scopes": pgettext_lazy("ledger detail", "scopes"),
    "to": pgettext_lazy("ledger detail", "to"),
    "url": pgettext_lazy("ledger detail", "URL"),
    "version": pgettext_lazy("ledger detail", "version"),
    "via": pgettext_lazy("ledger detail", "via"),
}

# A word this long (an id, a token) may wrap anywhere; a sentence wraps between words.
_HASH_MIN = 40


@dataclass(frozen=True)
class LedgerDetail:
    """One item of an entry's details as the page shows it: `text` the words, `full`
    the whole value when `text` shortens it (a hash; shown as a title), `long` when the
    text holds a word so long (an id, a token) that it may wrap anywhere."""

    label: str
    text: str
    full: str = ""
    long: bool = False


def ledger_kind_label(kind: str) -> str | None:
    """What an entry of this kind records, in words; None for a kind the page does not
    know (the page then shows the code)."""
    label = LEDGER_KIND_LABELS.get(kind)
    return None if label is None else str(label)


# A SHA-256 or similar digest as the ledger records one: hex, or base64.
_HASH = re.compile(r"[0-9a-f]{40,128}|[A-Za-z0-9+/]{40,88}={0,2}")


def _looks_like_hash(value: Any) -> bool:
    return isinstance(value, str) and _HASH.fullmatch(value) is not None and not value.isalpha()


def _item_text(value: Any, names: Mapping[str, str]) -> str:
    if value is None:
        return "\u2013"  # an en dash: nothing recorded
    if isinstance(value, bool):
        return pgettext("ledger detail", "yes") if value else pgettext("ledger detail", "no")
    if isinstance(value, str):
        return names.get(value, value)
    if isinstance(value, list | tuple):
        return ", ".join(
            f"({_item_text(v, names)})"
            if isinstance(v, list | tuple | dict)
            else _item_text(v, names)
            for v in value
        )
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_item_text(v, names)}" for key, v in value.items())
    if isinstance(value, int | float):
        return formats.number_format(value, force_grouping=True)
    return str(value)


# The reason codes the application writes into the ledger (a purge's, a revocation's, an
# expiry's), in words; a reason an officer typed is shown as typed.
LEDGER_REASON_WORDS: dict[str, Any] = {
    "consent_withdrawn": pgettext_lazy("ledger reason", "the person withdrew consent"),
    "purged": pgettext_lazy("ledger reason", "the recording was deleted"),
    "expired": pgettext_lazy("ledger reason", "its time ran out"),
    "retention_policy": pgettext_lazy("ledger reason", "the retention policy"),
    "user_choice": pgettext_lazy("ledger reason", "the person's retention choice"),
    "dont_save": pgettext_lazy("ledger reason", "the person chose not to keep recordings"),
    "deletion_request": pgettext_lazy("ledger reason", "a deletion request"),
    "file_missing": pgettext_lazy("ledger reason", "the file was missing from storage"),
}


def _value_text(key: str, value: Any, names: Mapping[str, str]) -> str:
    if key == "retention_days" and isinstance(value, int):
        return duration(value)
    if key == "jurisdiction" and isinstance(value, str):
        return country(value)
    if key == "purpose" and isinstance(value, str):
        return str(PURPOSE_WORDS.get(value, value))
    if key == "category" and isinstance(value, str):
        return str(CATEGORY_WORDS.get(value, value))
    if key == "reason" and isinstance(value, str) and value in LEDGER_REASON_WORDS:
        return str(LEDGER_REASON_WORDS[value])
    if key == "max_lag_ms" and isinstance(value, int | float):
        if value < 1000:
            return f"{formats.number_format(value)} ms"
        return charts_duration(value / 1000)
    return _item_text(value, names)


def ledger_details(payload: Any, names: Mapping[str, str] | None = None) -> list[LedgerDetail]:
    """An entry's payload as the page shows it, in key order: keys in words where the
    page has them, lists as comma-separated items, countries, purposes and durations
    named, hashes shortened (the whole value in a title), and an entry's parts as what
    they are: a commitment to that many profiles' parts. `names` names the ids the
    payload holds ("policy:7"; from `subject_names(payload_references(payload))`)."""
    names = names or {}
    if not isinstance(payload, dict):  # the application writes dicts
        return [LedgerDetail(label="", text=_item_text(payload, names), long=True)]
    details = []
    rest = dict(payload)
    root, parts = rest.pop("parts_root", None), rest.pop("parts", None)
    for key, value in sorted(rest.items(), key=lambda item: str(item[0])):
        label = str(LEDGER_KEY_WORDS.get(key, key))
        if _looks_like_hash(value):
            details.append(LedgerDetail(label=label, text=f"{value[:12]}…", full=value))
            continue
        text = _value_text(str(key), value, names)
        long = any(len(word) >= _HASH_MIN for word in text.split())
        details.append(LedgerDetail(label=label, text=text, long=long))
    if parts is not None or root is not None:
        count = parts if isinstance(parts, int) else 0
        words = ngettext(
            "commits to %(n)s profile's parts", "commits to %(n)s profiles' parts", count
        ) % {"n": formats.number_format(count, force_grouping=True)}
        shown = f"{str(root)[:12]}…" if root else ""
        details.append(
            LedgerDetail(label=words, text=shown, full=str(root) if root is not None else "")
        )
    return details


def ledger_kind_choices(kinds: Iterable[str]) -> list[tuple[str, str]]:
    """The ledger page's filter: (code, words) per kind, in the order of the words."""
    choices = [(kind, ledger_kind_label(kind) or kind) for kind in kinds]
    return sorted(choices, key=lambda choice: choice[1].casefold())


# A ledger subject, or an id the application writes into a payload: "legal_hold:3".
_SUBJECT = re.compile(r"(?P<kind>[a-z_]+):(?P<key>[^\s:]+)")


def _profile_names(keys: set[str]) -> dict[str, str]:
    from compliance.accounts.models import Profile

    found = Profile.objects.filter(external_id__in=keys).only("external_id", "display_name")
    # The id beside the name: the name is its owner's choice, and could pose as another
    # profile's id ("prof-bob" on prof-alice's profile).
    return {p.external_id: f"{p.display_name} ({p.external_id})" for p in found if p.display_name}


def _pk_keys(keys: set[str]) -> list[int]:
    return [int(key) for key in keys if key.isdigit()]


def _policy_names(keys: set[str]) -> dict[str, str]:
    from compliance.retention.models import RetentionPolicy

    found = RetentionPolicy.objects.filter(pk__in=_pk_keys(keys))
    return {
        str(policy.pk): gettext("retention policy: %(policy)s") % {"policy": policy_words(policy)}
        for policy in found
    }


def _hold_names(keys: set[str]) -> dict[str, str]:
    from compliance.retention.models import LegalHold

    found = LegalHold.objects.filter(pk__in=_pk_keys(keys)).only("pk", "case_reference")
    return {
        str(hold.pk): gettext("legal hold %(case)s") % {"case": hold.case_reference}
        for hold in found
    }


def _transfer_rule_names(keys: set[str]) -> dict[str, str]:
    from compliance.transfers.models import TransferRule

    found = TransferRule.objects.filter(pk__in=_pk_keys(keys))
    return {
        str(rule.pk): gettext("transfer rule: %(rule)s") % {"rule": transfer_rule_words(rule)}
        for rule in found
    }


def _consent_default_names(keys: set[str]) -> dict[str, str]:
    from compliance.consent.models import ConsentDefault

    found = ConsentDefault.objects.filter(pk__in=_pk_keys(keys))
    return {
        str(default.pk): gettext("default for %(purpose)s in %(where)s")
        % {
            "purpose": PURPOSE_WORDS.get(default.purpose, default.purpose),
            "where": country(default.jurisdiction),
        }
        for default in found
    }


def _webhook_names(keys: set[str]) -> dict[str, str]:
    from compliance.webhooks.models import Subscription

    found = Subscription.objects.filter(external_id__in=keys).only("external_id", "url")
    return {
        subscription.external_id: gettext("webhook to %(url)s") % {"url": subscription.url}
        for subscription in found
    }


def _reviewer_names(keys: set[str]) -> dict[str, str]:
    from compliance.sampling.models import Reviewer

    found = Reviewer.objects.filter(pk__in=_pk_keys(keys)).select_related("user")
    return {
        str(reviewer.pk): gettext("reviewer %(name)s in %(where)s")
        % {"name": reviewer.user.get_username(), "where": country(reviewer.location)}
        for reviewer in found
    }


def _choice_names(keys: set[str]) -> dict[str, str]:
    from .forms import RETENTION_LABELS

    return {
        key: gettext("the person's choice: %(choice)s") % {"choice": RETENTION_LABELS[key]}
        for key in keys
        if key in RETENTION_LABELS
    }


# Each kind of subject the page names, with the function that names a set of its keys
# in one query. A kind not listed, or a key whose row is gone, stays as recorded.
_SUBJECT_NAMERS = {
    "profile": _profile_names,
    "retention_policy": _policy_names,
    "policy": _policy_names,  # a purge's basis: the policy version that set the expiry
    "legal_hold": _hold_names,
    "transfer_rule": _transfer_rule_names,
    "consent_default": _consent_default_names,
    "webhook": _webhook_names,
    "reviewer": _reviewer_names,
    "choice": _choice_names,
}


def subject_names(subjects: Iterable[str]) -> dict[str, str]:
    """Each ledger subject (or id in a payload, "policy:7") as the page names it, with
    one query per kind: a profile by its name, a user by username, a policy, hold,
    rule, webhook or reviewer by what it is; anything else as recorded."""
    subjects = set(subjects)
    names = {subject: subject for subject in subjects}
    keys: dict[str, dict[str, str]] = {}
    for subject in subjects:
        match = _SUBJECT.fullmatch(subject)
        if match and match["kind"] in _SUBJECT_NAMERS:
            keys.setdefault(match["kind"], {})[match["key"]] = subject
    for kind, by_key in keys.items():
        for key, name in _SUBJECT_NAMERS[kind](set(by_key)).items():
            names[by_key[key]] = name
    users = [s for s in subjects if s.startswith("user:")]
    if users:
        names.update(actor_names(users))
    return names


def payload_references(payload: Any) -> set[str]:
    """The ids that a payload's values, or the items of its lists, hold and that the page
    can name ("policies": ["policy:7", "choice:dont_save"]), for `subject_names`. Nested
    lists (a purge's [profile, recording, reason] rows) hold no such ids and are not
    walked: a purge batch lists thousands."""
    if not isinstance(payload, dict):
        return set()
    found: set[str] = set()
    for value in payload.values():
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, str):
                continue
            match = _SUBJECT.fullmatch(item)
            if match and match["kind"] in _SUBJECT_NAMERS:
                found.add(item)
    return found


# What each webhook event tells a subscriber, for the officers' subscription form. The
# event names stay as they are (receivers match on them); only the explanation is words.
WEBHOOK_EVENT_WORDS: dict[str, Any] = {
    "consent.changed": _("a profile's consent for a purpose was granted or withdrawn"),
    "recording.purged": _("recordings were deleted (retention, a request or the user)"),
    "review_item.revoked": _("open review items were revoked"),
    "deletion_request.completed": _("a deletion request finished, with its receipt"),
    "retention_policy.created": _("a retention policy version was created"),
    "retention_policy.retired": _("a retention policy was retired"),
    "legal_hold.placed": _("a legal hold was placed"),
    "legal_hold.released": _("a legal hold was released"),
    "retention_choice.changed": _("a profile's retention choice changed"),
}


def webhook_event(name: str) -> Any:
    """An event type with what it means, e.g. "legal_hold.placed: a legal hold was placed";
    an event without words keeps the API's own explanation."""
    words = WEBHOOK_EVENT_WORDS.get(name)
    return name if words is None else format_lazy("{}: {}", name, words)
