from argparse import ArgumentParser

from django.core.management.base import BaseCommand

from compliance.retention.purge import purge_expired, purge_preview
from compliance.retention.services import retention_policies_apply


class Command(BaseCommand):
    help = "Purge every artefact past its effective retention (the code the beat runs)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--dry-run", action="store_true", help="Count what would go; change nothing."
        )

    def handle(self, *args: object, dry_run: bool, **options: object) -> None:
        if dry_run:
            counts = purge_preview()
            self.stdout.write(
                f"due: {counts['due']}  would purge: {counts['would_purge']}  "
                f"held: {counts['held']}  stuck claims: {counts['stuck']}  "
                f"blocked by holds: {counts['blocked_by_hold']}"
            )
            return
        retention_policies_apply()
        total = 0
        while True:
            run = purge_expired(budget_seconds=3600.0)
            total += run.purged
            self.stdout.write(
                f"purged {run.purged} artefacts ({run.recordings_purged} recordings) "
                f"in {run.batches} batches; held {run.held}; took over {run.taken_over}; "
                f"max lag {run.max_lag_seconds:.1f} s"
            )
            if not run.more:
                break
