"""Template helpers for the pages."""

from typing import Any

from django import template
from django.utils.formats import number_format

from compliance.security.roles import is_officer as _is_officer
from compliance.web import wording
from compliance.web.wording import actor_name

register = template.Library()


@register.simple_tag
def is_officer(user: Any) -> bool:
    """A privacy officer verified by a second factor in this session."""
    return _is_officer(user)


@register.filter
def get_item(mapping: Any, key: Any) -> Any:
    try:
        return mapping.get(key)
    except AttributeError:
        return None


@register.filter
def requester(requested_by: str) -> str:
    """Who asked for a full ledger verification, as the ledger page names them."""
    return actor_name(requested_by)


@register.filter
def thousands(value: int) -> str:
    """2000 as "2,000" (in German "2.000"): a limit a person reads at a glance."""
    return number_format(value, force_grouping=True)


@register.filter
def country(code: str) -> str:
    """DE as "Germany"."""
    return wording.country(code)


@register.filter
def duration(days: int) -> str:
    """540 days as "18 months"."""
    return wording.duration(days)
