from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from compliance.retention.storage_sweep import storage_sweep


class Command(BaseCommand):
    help = (
        "Settle files and rows a crash left apart (the code the beat runs every 6 hours). "
        "A mass change is refused unless --allow-mass-change."
    )

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument(
            "--allow-mass-change",
            action="store_true",
            help="Delete the orphans and tombstone the artefacts found missing even when "
            "they are more than the limit (after checking storage and DATABASE_URL).",
        )

    def handle(self, *args: object, allow_mass_change: bool, **options: object) -> None:
        run = storage_sweep(allow_mass_change=allow_mass_change)
        self.stdout.write(
            f"files: {run.files_checked}  orphans found: {run.orphan_files_found} "
            f"(limit {run.orphan_limit})  deleted: {run.orphan_files_deleted}\n"
            f"artefacts: {run.rows_checked}  without file: {run.rows_found_without_file} "
            f"(limit {run.rows_limit})  tombstoned: {run.rows_without_file}"
        )
        if run.refused:
            refused = [
                what
                for what, was in (("orphans", run.orphans_refused), ("missing", run.rows_refused))
                if was
            ]
            raise CommandError(
                f"refused a mass change ({', '.join(refused)}): nothing of it was changed. "
                "Check the storage and DATABASE_URL; then, if the counts are right, run "
                "again with --allow-mass-change."
            )
