"""How the pages name things for people: countries instead of codes, durations instead
of day counts, usernames instead of actor ids, and the officers' success messages.

The ledger and the services keep codes and ids; these words are made when a page shows
them, so a renamed user or a better country name never rewrites history."""

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model

from compliance.core.errors import ApplicationError, FieldError

COUNTRY_NAMES: dict[str, str] = {
    "AT": "Austria", "AU": "Australia", "BE": "Belgium", "BG": "Bulgaria", "BR": "Brazil",
    "CA": "Canada", "CH": "Switzerland", "CN": "China", "CY": "Cyprus",
    "CZ": "the Czech Republic", "DE": "Germany", "DK": "Denmark", "EE": "Estonia",
    "ES": "Spain", "FI": "Finland", "FR": "France", "GB": "the United Kingdom",
    "GR": "Greece", "HR": "Croatia", "HU": "Hungary", "IE": "Ireland", "IL": "Israel",
    "IN": "India", "IS": "Iceland", "IT": "Italy", "JP": "Japan", "KR": "South Korea",
    "LI": "Liechtenstein", "LT": "Lithuania", "LU": "Luxembourg", "LV": "Latvia",
    "MT": "Malta", "MX": "Mexico", "NL": "the Netherlands", "NO": "Norway",
    "NZ": "New Zealand", "PH": "the Philippines", "PL": "Poland", "PT": "Portugal",
    "RO": "Romania", "SE": "Sweden", "SG": "Singapore", "SI": "Slovenia",
    "SK": "Slovakia", "TR": "Turkey", "UA": "Ukraine", "US": "the United States",
    "ZA": "South Africa",
}  # fmt: skip

GROUP_NAMES = {"EU": "the EU", "EEA": "the EEA", "*": "everywhere"}

PURPOSE_WORDS = {"human_review": "human review", "model_training": "model training"}
CATEGORY_WORDS = {"audio": "audio", "transcript": "transcripts"}
APPLIES_TO_WORDS = {"all": "", "adults": " of adults", "children": " of children"}

# Actors that are not users: what the pages call them.
SYSTEM_ACTORS = {
    "schedule": "the schedule",
    "command": "manage.py verify_ledger",
    "system": "Earshot",
    "anonymous": "someone not signed in",
}


def country(code: str) -> str:
    """A jurisdiction as a person reads it; an unknown code stays as it is."""
    return GROUP_NAMES.get(code) or COUNTRY_NAMES.get(code, code)


def sentence_start(text: str) -> str:
    return text[:1].upper() + text[1:]


def duration(days: int) -> str:
    """A retention period in the unit people use: "18 months", "2 years", "30 days"."""
    if days == 0:
        return "not at all"
    if days % 365 == 0:
        years = days // 365
        return f"{years} year{'s' if years != 1 else ''}"
    if days % 30 == 0 or days in (90, 180, 540):
        months = round(days / 30)
        return f"{months} month{'s' if months != 1 else ''}"
    if days % 7 == 0 and days < 70:
        weeks = days // 7
        return f"{weeks} week{'s' if weeks != 1 else ''}"
    return f"{days} day{'s' if days != 1 else ''}"


def actor_names(actors: Iterable[str]) -> dict[str, str]:
    """Each actor id as a page names it, with one query for all the users among them:
    "user:12" becomes that user's username, "schedule" "the schedule"; a service
    client's actor and anything unknown stay as recorded."""
    actors = set(actors)
    names = {actor: SYSTEM_ACTORS.get(actor, actor) for actor in actors}
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
            names[actor] = "a user who no longer exists"
    return names


def actor_name(actor: str) -> str:
    return actor_names([actor])[actor]


def policy_words(policy: Any) -> str:
    """ "Germany, audio of children: kept 18 months (version 2)"."""
    what = CATEGORY_WORDS.get(policy.category, policy.category)
    whom = APPLIES_TO_WORDS.get(policy.applies_to, f" ({policy.applies_to})")
    return (
        f"{sentence_start(country(policy.jurisdiction))}, {what}{whom}: kept "
        f"{duration(policy.retention_days)} (version {policy.version})"
    )


def consent_default_words(default: Any) -> str:
    """ "France: model training is now off by default"."""
    state = "on" if default.granted else "off"
    purpose = PURPOSE_WORDS.get(default.purpose, default.purpose)
    return f"{sentence_start(country(default.jurisdiction))}: {purpose} is now {state} by default"


def transfer_rule_words(rule: Any) -> str:
    return (
        f"recordings from {country(rule.jurisdiction)} may be reviewed in "
        f"{country(rule.reviewer_location)}"
    )


# --- refusals on the forms -------------------------------------------------------------
# The services refuse with a stable code, a message written for API clients (it may
# name a JSON field in backticks) and per-field problems, each a code and a sentence
# (docs/domain.md, "Errors"). A page shows sentences only, never a code, naming the
# form's own fields; where the page has better words for a field's problem than the
# API's sentence, it says those.

REFUSAL_SENTENCES = {
    "invalid_range": "That was not saved: the first day lies after the last day.",
    "unknown_jurisdiction": "That was not saved: the country code is not one we know.",
    "unknown_location": "That was not saved: the country code is not one we know.",
}

# The services name some fields as the API does; the forms name them for people.
FORM_FIELDS = {"from": "date_from", "to": "date_to", "account": "target", "profile": "target"}

# (field, problem code) -> what the form says instead of the API's sentence.
FIELD_SENTENCES = {
    ("jurisdiction", "unknown"): "Use a two-letter country code, such as DE or US.",
    ("reviewer_location", "unknown"): "Use a two-letter country code, such as IE or US.",
    ("purpose", "unknown"): "Choose one of the purposes in the list.",
    ("account", "unknown"): "There is no account with this id. Use the search to find it.",
    ("profile", "unknown"): "There is no profile with this id. Use the search to find it.",
}


def _is_sentence(text: str) -> bool:
    return text[:1].isupper() and text.rstrip().endswith((".", "?", "!")) and "`" not in text


FIELDS_BELOW = "That was not saved: please check the fields marked below."


def refusal_sentence(error: ApplicationError, *, fallback: str = FIELDS_BELOW) -> str:
    """A service's refusal as one sentence for a form's reader; `fallback` when the
    service's message was written for an API client."""
    message = str(error.message)
    if _is_sentence(message):
        return message
    if error.code in REFUSAL_SENTENCES:
        return REFUSAL_SENTENCES[error.code]
    return fallback


def field_sentence(field: str, problem: FieldError) -> str:
    """One field's problem as the form says it: the page's own words where it has
    them, else the API's sentence; never the code."""
    if (field, problem.code) in FIELD_SENTENCES:
        return FIELD_SENTENCES[(field, problem.code)]
    if _is_sentence(problem.message):
        return problem.message
    return "Please check this value."


def page_refusal(error: ApplicationError, *, fallback: str = FIELDS_BELOW) -> ApplicationError:
    """The same refusal in the pages' words, for a page's JSON answer: the envelope of
    the API (same code, same fields' codes), with sentences a person can read."""
    fields = {
        name: [FieldError(p.code, field_sentence(name, p)) for p in problems]
        for name, problems in error.fields.items()
    }
    return ApplicationError(error.code, refusal_sentence(error, fallback=fallback), fields=fields)


def apply_refusal(form: Any, error: ApplicationError) -> None:
    """Put a service's refusal on the form, in sentences: the refusal above the form and
    each field's complaint on the field when the form has it (once per field)."""
    form.add_error(None, refusal_sentence(error))
    for name, problems in error.fields.items():
        target = FORM_FIELDS.get(name, name)
        if target not in form.fields:
            continue
        for problem in problems:
            sentence = field_sentence(name, problem)
            if sentence not in form.errors.get(target, []):
                form.add_error(target, sentence)
