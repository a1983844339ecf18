"""Serializer fields that refuse what DRF would silently coerce ("yes" for true, 12 for
"12", a naive time for UTC): in a compliance record, a guessed value is a wrong value."""

from datetime import UTC, datetime
from typing import Any

from django.utils.dateparse import parse_datetime
from rest_framework import serializers


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "Must be true or false."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        # multipart forms carry only strings
        if isinstance(data, str) and data in ("true", "false"):
            return data == "true"
        self.fail("invalid")
        raise AssertionError("unreachable")


class StrictCharField(serializers.CharField):
    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an explicit offset or Z; a naive time is refused, not assumed UTC."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z.",
    }

    def to_internal_value(self, value: Any) -> datetime:
        if not isinstance(value, str):
            self.fail("invalid")
        try:
            parsed = parse_datetime(value)
        except ValueError:
            parsed = None
        if parsed is None or parsed.tzinfo is None:
            self.fail("invalid")
        assert parsed is not None
        try:
            # Stored in UTC: 0001-01-01T00:00+01:00 has no UTC time to store.
            parsed.astimezone(UTC)
        except OverflowError:
            self.fail("invalid")
        return parsed
