from django.core.management.base import BaseCommand, CommandError

from compliance.ledger.checkpoints import ledger_checkpoint_problem
from compliance.ledger.models import VerificationRun
from compliance.ledger.selectors import verification_run_unacknowledged
from compliance.ledger.services import ledger_verification_start, ledger_verification_step


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the ledger from its first entry and hold it against the "
        "last intact verification and the newest published checkpoint (entries removed from "
        "the end, rewritten with every later hash recomputed, reordered); exit non-zero "
        "naming the first bad entry, or while an earlier broken finding waits for an "
        "officer's acknowledgement on the ledger page. "
        "The run is recorded, and the officers' ledger page shows it."
    )

    def handle(self, *args: object, **options: object) -> None:
        run = ledger_verification_start(requested_by="command", by_worker=False)
        finished = ledger_verification_step(
            run_id=run.pk, after_attempt=run.attempts, budget_seconds=None
        )
        if finished is None:
            raise CommandError(f"ledger verification run #{run.pk} was taken over; see its row")
        if finished.status == VerificationRun.Status.BROKEN:
            message = (
                f"ledger verification FAILED at ledger entry #{finished.problem_seq}: "
                f"{finished.problem}"
            )
            published = ledger_checkpoint_problem()
            if published is not None and published[1] not in finished.problem:
                # the chain's finding first; what it does to the published tree beside it
                message += f"; and at ledger entry #{published[0]}: {published[1]}"
            raise CommandError(message)
        standing = verification_run_unacknowledged()
        if standing is not None:
            # A chain that verifies now does not undo what an earlier run found: a
            # shortened chain verifies from its first entry, and an edit put back still
            # needs explaining. Only an officer's acknowledgement clears it.
            raise CommandError(
                f"ledger verification FAILED: full verification #{standing.pk} found ledger "
                f"entry #{standing.problem_seq}: {standing.problem}; not acknowledged yet "
                f"(acknowledge it on the officers' ledger page). This run found "
                f"{finished.entries_checked} entries that hold."
            )
        self.stdout.write(f"ledger OK: {finished.entries_checked} entries verified")
