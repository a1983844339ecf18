"""Celery is the doorbell; the rows are the work (docs/reliability.md).

The gate already refuses an item past its expiry at the instant of access, so this
sweep only makes the stored state say so (and frees the recording for a later draw).
Safe to run twice, at once, or never.

For the integrator, in config/settings/base.py (CELERY_BEAT_SCHEDULE):

    "sampling-expire-items": {"task": "sampling.expire_items", "schedule": 300.0},
"""

from celery import shared_task

from .services import review_items_expire


@shared_task(name="sampling.expire_items", acks_late=True, ignore_result=True)
def review_items_expire_task() -> int:
    return review_items_expire()
