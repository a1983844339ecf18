from argparse import ArgumentParser

from django.core.management.base import BaseCommand, CommandError

from compliance.clients.scopes import SCOPES
from compliance.clients.services import service_client_create
from compliance.core.errors import ApplicationError


class Command(BaseCommand):
    help = "Create a service client; prints its API key alone on the last line (shown once)."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("name")
        parser.add_argument(
            "--scopes",
            required=True,
            help=f"Comma-separated, from: {', '.join(SCOPES)}",
        )

    def handle(self, *args: object, name: str, scopes: str, **options: object) -> None:
        wanted = [s.strip() for s in scopes.split(",") if s.strip()]
        try:
            client, key = service_client_create(name=name, scopes=wanted, actor="cli")
        except ApplicationError as error:
            raise CommandError(error.message) from error
        self.stdout.write(
            f"Created service client {client.name} with scopes {','.join(client.scopes)}."
        )
        self.stdout.write("Its key is shown once; store it now:")
        self.stdout.write(key)
