"""Celery is the doorbell; the rows are the work (docs/reliability.md).

The gate already refuses an item past its expiry at the instant of access, so this
sweep only makes the stored state say so (and frees the recording for a later draw).
Safe to run twice, at once, or never.

For the integrator, in config/settings/base.py (CELERY_BEAT_SCHEDULE):

    "sampling-expire-items": {"task": "sampling.expire_items", "schedule": 300.0},
"""

import logging

from celery import shared_task

from compliance.ledger.restore import ledger_writes_paused

from .services import review_items_expire

logger = logging.getLogger(__name__)


@shared_task(name="sampling.expire_items", acks_late=True, ignore_result=True)
def review_items_expire_task() -> int:
    state = ledger_writes_paused()
    if state is not None:  # behind the export: nothing may append (docs/runtime.md)
        logger.warning("sampling.expire_items skipped: %s (%s)", state.code, state.message)
        return 0
    return review_items_expire()
