from django.core.management.base import BaseCommand, CommandError

from compliance.ledger.models import VerificationRun
from compliance.ledger.services import ledger_verification_start, ledger_verification_step


class Command(BaseCommand):
    help = (
        "Verify the hash chain of the ledger from its first entry; exit non-zero naming "
        "the first bad entry. The run is recorded, and the officers' ledger page shows it."
    )

    def handle(self, *args: object, **options: object) -> None:
        run = ledger_verification_start(requested_by="command", by_worker=False)
        finished = ledger_verification_step(
            run_id=run.pk, after_attempt=run.attempts, budget_seconds=None
        )
        if finished is None:
            raise CommandError(f"ledger verification run #{run.pk} was taken over; see its row")
        if finished.status == VerificationRun.Status.BROKEN:
            raise CommandError(
                f"ledger verification FAILED at ledger entry #{finished.problem_seq}: "
                f"{finished.problem}"
            )
        self.stdout.write(f"ledger OK: {finished.entries_checked} entries verified")
