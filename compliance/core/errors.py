"""One application error type with a stable code, and the handler that renders every
API error as the envelope of docs/domain.md:
`{"error": {"code", "message", "fields": {"<field>": [{"code", "message"}]}}}`.

Codes are for machines and never change; messages are sentences for people. Each
HTTP status a refusal may carry has its class here, so no caller builds one by hand."""

import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response


@dataclass(frozen=True)
class FieldError:
    """What is wrong with one field: `code` for machines (DRF's `required`, `invalid`,
    `max_length`..., or ours such as `unknown`), `message` a sentence for people."""

    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


FieldErrors = Mapping[str, Sequence[FieldError]]


def field_error(field: str, code: str, message: str) -> dict[str, list[FieldError]]:
    """The `fields` of a refusal that blames one field for one reason."""
    return {field: [FieldError(code, message)]}


def fields_json(fields: FieldErrors | None) -> dict[str, list[dict[str, str]]]:
    return {
        name: [problem.as_json() for problem in problems]
        for name, problems in (fields or {}).items()
    }


class ApplicationError(Exception):
    """A refusal the caller can act on. `code` is part of the API and never changes."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(self, code: str, message: str, *, fields: FieldErrors | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields: dict[str, list[FieldError]] = {
            name: list(problems) for name, problems in (fields or {}).items()
        }
        for problems in self.fields.values():
            for problem in problems:
                if not isinstance(problem, FieldError):
                    raise TypeError(f"a field's problem is a FieldError, not {problem!r}")

    def body(self) -> dict[str, Any]:
        return error_body(self.code, self.message, self.fields)


class Unauthenticated(ApplicationError):
    status_code = status.HTTP_401_UNAUTHORIZED


class PermissionDenied(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN


class NotFound(ApplicationError):
    """`NotFound("Profile")` is the plain `not_found`; a refusal with its own code gives
    both, `NotFound("no_checkpoint", "No checkpoint has been signed yet.")`."""

    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, what_or_code: str, message: str | None = None) -> None:
        if message is None:
            super().__init__("not_found", f"{what_or_code} not found.")
        else:
            super().__init__(what_or_code, message)


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT


class Gone(ApplicationError):
    status_code = status.HTTP_410_GONE


class PayloadTooLarge(ApplicationError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE


class UnsupportedMediaType(ApplicationError):
    status_code = status.HTTP_415_UNSUPPORTED_MEDIA_TYPE


class Unprocessable(ApplicationError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY


class TooManyRequests(ApplicationError):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS


class Unavailable(ApplicationError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE


def error_body(code: str, message: str, fields: FieldErrors | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields_json(fields)}}


_DRF_CODES: list[tuple[type[exceptions.APIException], str]] = [
    (exceptions.ParseError, "malformed_request"),
    (exceptions.NotAuthenticated, "not_authenticated"),
    (exceptions.AuthenticationFailed, "authentication_failed"),
    (exceptions.PermissionDenied, "permission_denied"),
    (exceptions.NotFound, "not_found"),
    (exceptions.MethodNotAllowed, "method_not_allowed"),
    (exceptions.NotAcceptable, "not_acceptable"),
    (exceptions.UnsupportedMediaType, "unsupported_media_type"),
    (exceptions.Throttled, "throttled"),
    (exceptions.ValidationError, "validation_error"),
]

NON_FIELD = "non_field_errors"
FIELDS_MESSAGE = "The request has invalid fields."


def _is_leaf(detail: Any) -> bool:
    return not isinstance(detail, dict | list)


def _collect(detail: Any, path: list[str], out: dict[str, list[FieldError]]) -> None:
    if isinstance(detail, dict):
        for key, value in detail.items():
            _collect(value, [*path, str(key)], out)
    elif isinstance(detail, list) and all(_is_leaf(item) for item in detail):
        for item in detail:
            _collect(item, path, out)
    elif isinstance(detail, list):  # one entry per item of a list in the body
        for index, item in enumerate(detail):
            _collect(item, [*path, str(index)], out)
    else:
        code = getattr(detail, "code", None) or "invalid"
        out.setdefault(".".join(path), []).append(FieldError(str(code), str(detail)))


def validation_error_parts(
    exc: exceptions.ValidationError,
) -> tuple[str, dict[str, list[FieldError]]]:
    """A DRF validation error as the envelope's message and fields. A nested field is
    named by its path (`recordings.3.profile`); errors not tied to a field make the message."""
    collected: dict[str, list[FieldError]] = {}
    _collect(exc.detail, [], collected)
    loose = collected.pop("", []) + collected.pop(NON_FIELD, [])
    if loose:
        return "; ".join(problem.message for problem in loose), collected
    return FIELDS_MESSAGE, collected


def _raised_while_parsing(exc: BaseException) -> bool:
    return any(
        isinstance(frame.f_locals.get("self"), BaseParser)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, RecursionError) and _raised_while_parsing(exc):
        # json raises RecursionError, not ValueError, for a body nested thousands deep,
        # and DRF's JSONParser turns only ValueError into a ParseError.
        exc = exceptions.ParseError("The request body is nested too deeply.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()

    from rest_framework.views import exception_handler  # DRF's views import this module

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "error")
    fields: dict[str, list[FieldError]] = {}
    if isinstance(exc, exceptions.ValidationError):
        message, fields = validation_error_parts(exc)
    else:
        message = str(exc.detail)
    response.data = error_body(code, message, fields)
    return response
