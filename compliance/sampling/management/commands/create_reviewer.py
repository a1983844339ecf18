from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from compliance.core.errors import ApplicationError
from compliance.sampling.models import DEFAULT_DAILY_QUOTA
from compliance.sampling.services import reviewer_create


class Command(BaseCommand):
    help = "Make an existing login user a reviewer at a location, with a daily quota."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument("--location", required=True, help="ISO 3166-1 alpha-2")
        parser.add_argument("--quota", type=int, default=DEFAULT_DAILY_QUOTA)

    def handle(self, *args: Any, **options: Any) -> None:
        user = get_user_model().objects.filter(username=options["username"]).first()
        if user is None:
            raise CommandError(f"No user {options['username']!r}.")
        try:
            reviewer = reviewer_create(
                user=user,
                location=options["location"],
                daily_quota=options["quota"],
                actor="manage.py",
            )
        except ApplicationError as error:
            raise CommandError(error.message) from None
        self.stdout.write(f"reviewer {reviewer.pk}: {user.get_username()} at {reviewer.location}")
