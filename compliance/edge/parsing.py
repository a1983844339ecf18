"""Input into typed values, once, at the edge: the DRF views and the fast eligibility
path call the same parsers, and the services receive `str`, `int`, `datetime` and
enum values that are already valid, never `Any`.

Each parser refuses with an `ApplicationError` whose `fields` names the field with a
code and a sentence (docs/domain.md, "Errors"). The refusal's top-level code and
message are the endpoint's, given by the caller: they are part of the API and some
endpoints word the same problem differently (tests/core/test_countries.py)."""

import json
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, ClassVar, TypeVar

from rest_framework import serializers

from compliance.core.countries import is_country
from compliance.core.errors import ApplicationError, FieldError, field_error
from compliance.core.fields import AwareDateTimeField

_E = TypeVar("_E", bound=str)

REQUIRED = "This field is required."


def refuse(
    field: str, field_code: str, field_message: str, *, code: str, message: str | None = None
) -> ApplicationError:
    """The refusal of one field: `code`/`message` for the request, the field's own
    code and sentence under `fields`."""
    return ApplicationError(
        code, message or field_message, fields=field_error(field, field_code, field_message)
    )


def json_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, Mapping):
        raise ApplicationError("validation_error", "The body must be a JSON object.")
    return body


def choice(raw: Any, choices: type[_E], *, field: str, code: str, message: str | None = None) -> _E:
    """One of a `TextChoices` (or `StrEnum`) by its value: `required` when absent,
    `unknown` when it is not one of them."""
    values = [member.value for member in choices]  # type: ignore[attr-defined]
    if raw in values:
        return choices(raw)
    if raw is None or raw == "":
        raise refuse(field, "required", REQUIRED, code=code, message=message)
    return_message = f"Must be one of {', '.join(values)}."
    raise refuse(field, "unknown", return_message, code=code, message=message)


def country(
    raw: Any, *, field: str, code: str, message: str, field_message: str | None = None
) -> str:
    """An ISO 3166-1 alpha-2 code, as a string, or the refusal `unknown`."""
    if isinstance(raw, str) and is_country(raw):
        return raw
    raise refuse(field, "unknown", field_message or message, code=code, message=message)


def optional_country(
    raw: Any, *, field: str, code: str, message: str, field_message: str | None = None
) -> str | None:
    if raw is None:
        return None
    return country(raw, field=field, code=code, message=message, field_message=field_message)


def whole_number(raw: Any, *, field: str, minimum: int, message: str) -> int:
    """A JSON integer (not a boolean, not "12") of at least `minimum`."""
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= minimum:
        return raw
    if raw is None:
        raise refuse(field, "required", REQUIRED, code="validation_error", message=message)
    raise refuse(field, "invalid", message, code="validation_error")


def optional_text(raw: Any, *, field: str, code: str, message: str) -> str | None:
    if raw is None or isinstance(raw, str):
        return raw
    raise refuse(field, "not_a_string", message, code=code)


def optional_time(body: Mapping[str, Any], field: str) -> datetime | None:
    """An ISO 8601 time with its offset, as `AwareDateTimeField` reads one."""
    if body.get(field) is None:
        return None
    try:
        return AwareDateTimeField().to_internal_value(body[field])
    except serializers.ValidationError as error:
        problems = [
            FieldError(str(getattr(detail, "code", "invalid")), str(detail))
            for detail in error.detail  # a field's error holds a list
        ]
        raise ApplicationError(
            "validation_error", f"{field}: {problems[0].message}", fields={field: problems}
        ) from None


UNKNOWN_FIELD = "unknown_field"
UNKNOWN_FIELD_MESSAGE = "This field is not one we know; check its spelling."


def unknown_field_errors(
    body: Mapping[str, Any], known: Iterable[str]
) -> dict[str, list[FieldError]]:
    """The fields of `body` not in `known`, each refused as `unknown_field`: a typo
    such as "form" for "from" must not be read as "no value given"."""
    return {
        str(name): [FieldError(UNKNOWN_FIELD, UNKNOWN_FIELD_MESSAGE)]
        for name in sorted(set(body) - set(known), key=str)
    }


def unknown_fields(body: Mapping[str, Any], known: Iterable[str]) -> None:
    """Refuse a body with a field not in `known` (400 `validation_error`)."""
    fields = unknown_field_errors(body, known)
    if fields:
        raise ApplicationError(
            "validation_error", f"Unknown fields: {', '.join(fields)}.", fields=fields
        )


class StrictInput(serializers.Serializer):
    """The base of every request body's serializer: a field it does not declare is
    refused as `unknown_field`, at the top level and in nested items alike (a nested
    serializer validates its items through this same method). `extra_fields` names
    the fields a subclass reads by hand (such as "from", a Python keyword)."""

    extra_fields: ClassVar[frozenset[str]] = frozenset()

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = set(data) - set(self.fields) - self.extra_fields
            if unknown:
                raise serializers.ValidationError(
                    {
                        str(name): [
                            serializers.ErrorDetail(UNKNOWN_FIELD_MESSAGE, code=UNKNOWN_FIELD)
                        ]
                        for name in sorted(unknown, key=str)
                    }
                )
        return super().to_internal_value(data)


def id_list(raw: Any, *, field: str, limit: int, max_length: int = 128) -> list[str]:
    """A non-empty list of at most `limit` ids, each a string of 1 to `max_length`; the
    first that is not is named by its path, `recordings.3`."""
    if not isinstance(raw, list) or not raw:
        raise refuse(
            field,
            "required" if raw is None else "invalid",
            REQUIRED if raw is None else "Must be a non-empty list of ids.",
            code="validation_error",
            message=f"{field} must be a non-empty list of recording ids.",
        )
    if len(raw) > limit:
        raise refuse(
            field,
            "max_length",
            f"At most {limit} ids.",
            code="batch_too_large",
            message=f"At most {limit} {field} per batch; got {len(raw)}.",
        )
    first = next(
        (n for n, i in enumerate(raw) if not (isinstance(i, str) and 0 < len(i) <= max_length)),
        None,
    )
    if first is not None:
        raise refuse(
            f"{field}.{first}",  # the path of the first bad id (docs/domain.md, "Errors")
            "invalid_id",
            f"Each id must be a string of 1 to {max_length} characters.",
            code="validation_error",
            message=f"Every recording id must be a string of 1 to {max_length} characters.",
        )
    return raw


def flags(raw: Any, choices: type[_E], *, field: str = "flags") -> tuple[str, ...]:
    """Flags as a list of names (`["sensitive"]`), a comma-separated string or an object
    of booleans. An object's unknown names are refused here; a list's are the service's
    to refuse (it checks every input's flags, whoever parsed them)."""
    values = [member.value for member in choices]  # type: ignore[attr-defined]
    if raw is None:
        return ()
    if isinstance(raw, dict):
        if not all(isinstance(v, bool) for v in raw.values()):
            raise refuse(
                field, "invalid", "Flag values must be true or false.", code="validation_error"
            )
        unknown = set(raw) - set(values)
        if unknown:
            message = f"Unknown flags {sorted(unknown)}; known: {', '.join(values)}."
            raise refuse(field, "invalid", message, code="validation_error")
        return tuple(k for k, v in raw.items() if v)
    if isinstance(raw, str):
        raw = [part.strip() for part in raw.split(",") if part.strip()]
    if isinstance(raw, list) and all(isinstance(v, str) for v in raw):
        return tuple(raw)
    message = f"A list of flag names, e.g. {json.dumps(values)}."
    raise refuse(field, "invalid", message, code="validation_error")


def text(raw: Any, *, field: str, message: str, code: str = "validation_error") -> str:
    """A JSON string; absent, null or any other kind is refused as `invalid`."""
    if isinstance(raw, str):
        return raw
    raise refuse(field, "invalid", message, code=code)
