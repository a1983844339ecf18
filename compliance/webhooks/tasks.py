"""Celery is the doorbell; the ledger and the delivery rows are the work. Beat runs
the sender (which dispatches as it goes) every second; a new delivery rings earlier,
and a run still busy at its end rings for the next. Both are safe to run twice or at
once: the dispatcher holds its cursor row, one sender runs at a time (its run lock),
and deliveries are claimed under a lease."""

from celery import shared_task

from compliance.core.enqueue import enqueue

from . import sender, services


@shared_task(name="webhooks.dispatch", acks_late=True, ignore_result=True)
def webhooks_dispatch_task() -> None:
    while services.webhooks_dispatch() >= 1000:
        pass


@shared_task(name="webhooks.send", acks_late=True, ignore_result=True)
def webhooks_send_task() -> int:
    """How many ledger entries it dispatched and deliveries it tried: 0 is an idle tick,
    logged at DEBUG only (compliance/webhooks/logs.py)."""
    ran = sender.webhooks_tick()
    if ran.busy:
        enqueue("webhooks.send")
    return ran.work
