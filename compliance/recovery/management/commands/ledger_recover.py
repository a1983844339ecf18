from django.core.management.base import BaseCommand, CommandError

from compliance.ledger.restore import BEHIND, RecoveryRefused, ledger_export_state
from compliance.recovery.services import ledger_recover


class Command(BaseCommand):
    help = (
        "After a restore from an older backup: re-import, verbatim, the ledger entries "
        "LEDGER_EXPORT holds beyond the database's newest (same seq, leaf bytes and hashes, "
        "checked against every exported checkpoint, with the per-profile parts their "
        "parts_root commits to), re-apply their effects (withdrawals, legal holds, deletion "
        "requests, purges, sample draws), and let appending, purging and sampling go on. "
        "Changes nothing, and exits non-zero, when the database is not behind the "
        "export or the export does not extend it. --check only reports the state."
    )

    def add_arguments(self, parser):  # type: ignore[no-untyped-def]
        parser.add_argument("--check", action="store_true", help="report the state only")

    def handle(self, *args: object, **options: object) -> None:
        state = ledger_export_state(fresh=True)
        self.stdout.write(
            f"ledger: {state.status} (database {state.database_size} entries, export "
            f"checkpoint {state.export_size})" + (f": {state.message}" if state.message else "")
        )
        if options["check"]:
            if state.status != "ok":
                raise CommandError(state.code)
            return
        if state.status != BEHIND:
            if state.status == "ok":
                self.stdout.write("nothing to recover")
                return
            raise CommandError(f"{state.code}: not recovered")
        try:
            recovery, applied = ledger_recover()
        except RecoveryRefused as exc:
            raise CommandError(f"ledger_recover refused, nothing changed: {exc}") from exc
        effects = ", ".join(f"{kind} {n}" for kind, n in sorted(applied.items())) or "none"
        self.stdout.write(
            f"ledger recovered: entries {recovery.first}..{recovery.last} re-imported, "
            f"{recovery.checkpoints} checkpoints recorded; effects re-applied: {effects}"
        )
