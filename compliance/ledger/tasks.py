"""Celery is the doorbell; the runs are the work (docs/reliability.md). A step claims its run
and is fenced by its attempt number, so every task here is safe to run twice, at
once, or never (the sweep then resumes the run)."""

from celery import shared_task

from compliance.core.enqueue import enqueue

from . import checkpoints, services
from .models import VerificationRun


@shared_task(name="ledger.verification_step", acks_late=True, ignore_result=True)
def ledger_verification_step_task(run_id: int, after_attempt: int | None = None) -> None:
    """A step of a full verification (VERIFY_STEP_SECONDS), then the next in a new task,
    so no task comes near the time limit however long the ledger grows."""
    run = services.ledger_verification_step(run_id=run_id, after_attempt=after_attempt)
    if run is not None and run.status == VerificationRun.Status.RUNNING:
        enqueue(ledger_verification_step_task, run_id, run.attempts)


@shared_task(name="ledger.verification_sweep", acks_late=True, ignore_result=True)
def ledger_verification_sweep_task() -> None:
    """Every few minutes: the scheduled full verification when it is due, and runs whose
    worker died."""
    for run_id in services.ledger_verifications_sweep().resume:
        enqueue(ledger_verification_step_task, run_id)


@shared_task(name="ledger.checkpoint", acks_late=True, ignore_result=True)
def ledger_checkpoint_task() -> None:
    """Every minute: sign a checkpoint if the ledger grew. Safe to run twice: the second
    finds nothing new (or waits for the first's lock and then finds nothing new)."""
    checkpoints.ledger_checkpoint_issue()
