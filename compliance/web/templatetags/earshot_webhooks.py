"""The webhooks alert on the officers' dashboard, drawn by its own tag so the dashboard's
view needs no webhook figures of its own."""

from typing import Any

from django import template

from compliance.webhooks.selectors import deletions_unconfirmed, subscriptions_failing

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
