"""Celery is the doorbell; the runs are the work (docs/reliability.md). A step claims its run
and is fenced by its attempt number, so every task here is safe to run twice, at
once, or never (the sweep then resumes the run)."""

import logging

from celery import shared_task

from compliance.core.enqueue import enqueue

from . import checkpoints, services
from .models import VerificationRun
from .restore import ledger_writes_paused

logger = logging.getLogger(__name__)


def _paused(task: str) -> bool:
    """Behind the export (docs/runtime.md): no checkpoint is signed over the restored
    prefix, and no scheduled verification records the missing entries as a finding that
    would stand after the recovery has put them back; `/readyz` says why meanwhile."""
    state = ledger_writes_paused()
    if state is not None:
        logger.warning("%s skipped: %s (%s)", task, state.code, state.message)
    return state is not None


@shared_task(name="ledger.verification_step", acks_late=True, ignore_result=True)
def ledger_verification_step_task(run_id: int, after_attempt: int | None = None) -> None:
    """A step of a full verification (VERIFY_STEP_SECONDS), then the next in a new task,
    so no task comes near the time limit however long the ledger grows."""
    if _paused("ledger.verification_step"):
        return  # the sweep resumes the run once its lease lapses after the recovery
    run = services.ledger_verification_step(run_id=run_id, after_attempt=after_attempt)
    if run is not None and run.status == VerificationRun.Status.RUNNING:
        enqueue(ledger_verification_step_task, run_id, run.attempts)


@shared_task(name="ledger.verification_sweep", acks_late=True, ignore_result=True)
def ledger_verification_sweep_task() -> None:
    """Every few minutes: the scheduled full verification when it is due, and runs whose
    worker died."""
    if _paused("ledger.verification_sweep"):
        return
    for run_id in services.ledger_verifications_sweep().resume:
        enqueue(ledger_verification_step_task, run_id)


@shared_task(name="ledger.checkpoint", acks_late=True, ignore_result=True)
def ledger_checkpoint_task() -> None:
    """Every minute: sign a checkpoint if the ledger grew. Safe to run twice: the second
    finds nothing new (or waits for the first's lock and then finds nothing new)."""
    if _paused("ledger.checkpoint"):
        return
    checkpoints.ledger_checkpoint_issue()
