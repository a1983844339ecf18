from django.core.management.base import BaseCommand

from compliance.demo.services import (
    DEMO_CLIENT,
    DEMO_HISTORY_PROFILES,
    DEMO_PROFILES,
    demo_seed,
)
from compliance.ledger.checkpoints import ledger_checkpoint_issue


class Command(BaseCommand):
    help = "Load demo people, profiles, consents and voice clips; print demo logins and an API key."

    def handle(self, *args: object, **options: object) -> None:
        credentials = demo_seed()
        # signed now, not a minute after beat starts: GET /api/v1/ledger/checkpoint
        # answers right away for an auditor's walk-through after a fresh start
        checkpoint = ledger_checkpoint_issue()
        self.stdout.write("Demo data loaded. Logins (passwords are new on every seed):")
        for username, password in credentials.users.items():
            self.stdout.write(f"  {username:<8} {password}")
        self.stdout.write(
            "Officer second factor: a backup code (each works once): "
            + ", ".join(credentials.officer_backup_codes[:3])
        )
        self.stdout.write(
            f"  or add to an authenticator app: {credentials.officer_provisioning_uri}"
        )
        self.stdout.write(
            "Demo profiles: " + ", ".join(DEMO_PROFILES) + f"; {DEMO_HISTORY_PROFILES} more "
            "households with 90 days of history (profiles prof-demo-001 ...)"
        )
        if checkpoint is not None:
            self.stdout.write(f"Ledger checkpoint signed: tree size {checkpoint.tree_size}.")
        # the key last, alone on its line: scripts take the last line (README)
        self.stdout.write(f"API key of service client {DEMO_CLIENT!r} (all scopes):")
        self.stdout.write(credentials.api_key)
