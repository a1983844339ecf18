"""The webhooks parts of pages drawn by tags of their own, so the pages' views need no
webhook figures: the alert on the officers' dashboard, the partner systems'
confirmations on a deletion request's page."""

from typing import Any

from django import template

from compliance.webhooks.selectors import (
    deletion_request_confirmations,
    deletions_unconfirmed,
    subscriptions_failing,
)

from ..charts import duration

register = template.Library()


@register.inclusion_tag("web/officer/_webhooks_alert.html")
def webhooks_alert() -> dict[str, Any]:
    unconfirmed = deletions_unconfirmed()
    return {
        "unconfirmed": unconfirmed,
        "alert_after": duration(unconfirmed["after_seconds"]),
        "failing": subscriptions_failing(),
        "link": True,
    }


@register.inclusion_tag("web/privacy/_deletion_confirmations.html")
def deletion_confirmations(deletion: Any) -> dict[str, Any]:
    """How many of the partner systems holding copies confirmed a done deletion."""
    return {"confirmations": deletion_request_confirmations(receipt=deletion.receipt or "")}
