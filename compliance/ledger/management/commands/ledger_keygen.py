from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.ledger.signing import signing_key_generate


class Command(BaseCommand):
    help = (
        "Print a new Ed25519 ledger signing key for LEDGER_SIGNING_KEY, alone on the last "
        "line; its public verifier key goes to stderr. Nothing is stored."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--name", default=None, help="key name (default LEDGER_ORIGIN)")

    def handle(self, *args: object, **options: object) -> None:
        name = str(options["name"] or settings.LEDGER_ORIGIN)
        try:
            key = signing_key_generate(name)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"verifier key: {key.verifier_key}")
        self.stdout.write(key.signer_key())
