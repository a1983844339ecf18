"""Serializer fields that refuse what DRF would silently coerce ("yes" for true, 12 for
"12", a naive time for UTC): in a compliance record, a guessed value is a wrong value."""

import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

from django.http import QueryDict
from django.utils.dateparse import parse_datetime
from rest_framework import serializers
from rest_framework.validators import ProhibitSurrogateCharactersValidator

# Every date and time accepted from outside lies within these years. Nothing Earshot
# records happened before 1970 or will be kept past 9000, and the bound leaves room
# for the date arithmetic done on accepted values (a retention period added to a
# date, the day after an inclusive end): at year 9999 that arithmetic overflows.
EARLIEST_YEAR = 1970
LATEST_YEAR = 9000
OUT_OF_RANGE_MESSAGE = f"Must lie between the years {EARLIEST_YEAR} and {LATEST_YEAR}."


def year_in_range(value: date) -> bool:
    return EARLIEST_YEAR <= value.year <= LATEST_YEAR


class StrictBooleanField(serializers.BooleanField):
    """A JSON body's boolean is a JSON boolean: the string "true" is refused. A form
    body (multipart or urlencoded) carries only strings, so there "true" and "false"
    are the booleans' spelling."""

    default_error_messages = {"invalid": "Must be true or false (a JSON boolean)."}

    def to_internal_value(self, data: Any) -> bool:
        if isinstance(data, bool):
            return data
        from_form = isinstance(getattr(self.root, "initial_data", None), QueryDict)
        if from_form and isinstance(data, str) and data in ("true", "false"):
            return data == "true"
        self.fail("invalid")
        raise AssertionError("unreachable")


_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL = re.compile("[\x00-\x1f\x7f]")


class _ProhibitSurrogates(ProhibitSurrogateCharactersValidator):
    """DRF's check, with its message and code, by a regular expression: DRF's walks the
    text character by character in Python, which for a transcript cost more than
    the rest of its validation."""

    def __call__(self, value: Any) -> None:
        found = _SURROGATE.search(str(value))
        if found is not None:
            message = self.message.format(code_point=ord(found.group()))
            raise serializers.ValidationError(message, code=self.code)


class StrictCharField(serializers.CharField):
    default_error_messages = {"not_a_string": "Must be a string."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.validators = [
            _ProhibitSurrogates() if type(v) is ProhibitSurrogateCharactersValidator else v
            for v in self.validators
        ]

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class ExternalIdField(StrictCharField):
    """The platform's id for a thing, which becomes one segment of our URLs
    (/api/v1/profiles/<id>/..., the privacy page's links): a "/" would split it, "." and
    ".." are rewritten by every client, control characters belong in no address."""

    default_error_messages = {
        "not_a_segment": 'Must not contain "/" or control characters, nor be "." or "..".',
    }

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 128)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        if not is_url_segment(value):
            self.fail("not_a_segment")
        return value


def is_printable_line(value: str) -> bool:
    """Text on one line that shows all it holds: no control character, line break or
    invisible format character (a direction override could make it read as something
    else); spaces of any width are text (a no-break space in a pasted case number)."""
    return all(c.isprintable() or unicodedata.category(c) == "Zs" for c in value)


def is_url_segment(value: str) -> bool:
    """Whether `value` can be an external id: one segment of a URL (ExternalIdField)."""
    return "/" not in value and value not in (".", "..") and _CONTROL.search(value) is None


class AwareDateTimeField(serializers.DateTimeField):
    """ISO 8601 with an explicit offset or Z; a naive time is refused, not assumed UTC."""

    default_error_messages = {
        "invalid": "Must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T12:00:00Z.",
        "out_of_range": OUT_OF_RANGE_MESSAGE,
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
            in_utc = parsed.astimezone(UTC)
        except OverflowError:
            self.fail("out_of_range")
        if not year_in_range(in_utc):
            self.fail("out_of_range")
        return parsed
