"""Celery is the doorbell; the ledger and the delivery rows are the work. Beat runs
the dispatcher and the sender every second; a change's commit and a new delivery ring
earlier. Both are safe to run twice or at once: the dispatcher holds its cursor row,
the sender claims rows under a lease."""

from celery import shared_task

from . import services


@shared_task(name="webhooks.dispatch", acks_late=True, ignore_result=True)
def webhooks_dispatch_task() -> None:
    while services.webhooks_dispatch() >= 1000:
        pass


@shared_task(name="webhooks.send", acks_late=True, ignore_result=True)
def webhooks_send_task() -> int:
    """How many ledger entries it dispatched and deliveries it tried: 0 is an idle tick,
    logged at DEBUG only (compliance/webhooks/logs.py)."""
    dispatched = services.webhooks_dispatch()
    return dispatched + services.webhooks_send(budget_seconds=10.0)
