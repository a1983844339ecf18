"""Celery is the doorbell; the rows are the work (docs/reliability.md). Every task here
is safe to run twice, at once, or never (the beat's sweep then does it)."""

import logging

from celery import shared_task

from compliance.core.enqueue import enqueue
from compliance.ledger.restore import ledger_writes_paused

from . import deletion_requests, purge, services, storage_sweep

logger = logging.getLogger(__name__)


def _paused(task: str) -> bool:
    """While the ledger is behind its export (docs/runtime.md), nothing is purged: a
    purge could not record its evidence. The beat rings again after the recovery."""
    state = ledger_writes_paused()
    if state is not None:
        logger.warning("%s skipped: %s (%s)", task, state.code, state.message)
    return state is not None


@shared_task(name="retention.purge_expired", acks_late=True, ignore_result=True)
def purge_expired_task() -> None:
    if _paused("retention.purge_expired"):
        return
    run = purge.purge_expired(budget_seconds=50.0)
    if run.more:
        enqueue(purge_expired_task)


@shared_task(name="retention.apply_policies", acks_late=True, ignore_result=True)
def retention_policies_apply_task() -> None:
    if _paused("retention.apply_policies"):
        return
    services.retention_policies_apply()


@shared_task(name="retention.run_deletion_request", acks_late=True, ignore_result=True)
def deletion_request_run_task(public_id: str) -> None:
    if _paused("retention.run_deletion_request"):
        return
    deletion_requests.deletion_request_run(public_id=public_id)


@shared_task(name="retention.sweep", acks_late=True, ignore_result=True)
def retention_sweep_task() -> None:
    """Every minute: policies that came into force, lost or stalled deletion requests."""
    if _paused("retention.sweep"):
        return
    services.retention_policies_apply()
    for public_id in deletion_requests.deletion_requests_sweep():
        enqueue(deletion_request_run_task, public_id)


@shared_task(name="retention.storage_sweep", acks_late=True, ignore_result=True)
def storage_sweep_task() -> None:
    if _paused("retention.storage_sweep"):
        return
    storage_sweep.storage_sweep()
