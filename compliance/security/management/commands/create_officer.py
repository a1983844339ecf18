from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.core.errors import ApplicationError
from compliance.security.services import BACKUP_CODES, second_factor_issue


class Command(BaseCommand):
    help = (
        "Create a privacy officer with a TOTP second factor and backup codes; print the "
        "provisioning URI (and the generated password) once. With --existing, use a user "
        "that exists; with --second-factor-only, only issue the devices (for a reviewer)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--email", default="")
        parser.add_argument(
            "--existing", action="store_true", help="the user exists; keep their password"
        )
        parser.add_argument(
            "--second-factor-only",
            action="store_true",
            help="issue the devices without making the user an officer (implies --existing)",
        )
        parser.add_argument(
            "--replace-devices",
            action="store_true",
            help="delete the user's current second factors and issue new ones",
        )
        parser.add_argument("--backup-codes", type=int, default=BACKUP_CODES)

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 <= options["backup_codes"] <= 20:
            raise CommandError("--backup-codes: from 0 to 20.")
        device_only = options["second_factor_only"]
        try:
            setup = second_factor_issue(
                username=options["username"],
                create=not (options["existing"] or device_only),
                officer=not device_only,
                replace_devices=options["replace_devices"],
                email=options["email"],
                backup_codes=options["backup_codes"],
                actor="manage.py",
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        write = self.stdout.write
        role = "privacy officer" if not device_only else "user"
        write(f"{role} {setup.user.get_username()} (user {setup.user.pk}): second factor issued")
        if setup.password is not None:
            write(f"password (shown once): {setup.password}")
        if setup.backup_codes:
            write("backup codes (each works once; keep them offline):")
            for code in setup.backup_codes:
                write(f"  {code}")
        write("TOTP provisioning URI (add it to an authenticator app; shown once):")
        write(setup.provisioning_uri)
