from django.core.management.base import BaseCommand, CommandError

from compliance.ledger.selectors import ledger_verify


class Command(BaseCommand):
    help = "Verify the hash chain of the ledger; exit non-zero naming the first bad entry."

    def handle(self, *args: object, **options: object) -> None:
        result = ledger_verify()
        if not result.ok:
            raise CommandError(f"ledger verification FAILED at {result.problem}")
        self.stdout.write(f"ledger OK: {result.entries_checked} entries verified")
