"""Core's beat work; safe to run twice, at once, or never (keys only live longer)."""

from celery import shared_task

from .idempotency import idempotency_keys_cleanup


@shared_task(name="core.idempotency_keys_cleanup", acks_late=True, ignore_result=True)
def idempotency_keys_cleanup_task() -> int:
    return idempotency_keys_cleanup()
