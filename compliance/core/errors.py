"""One application error type with a stable code, and the handler that renders every
API error as the envelope of docs/domain.md, `{"error": {"code", "message", "fields"}}`."""

import traceback
from typing import Any

from django.core.exceptions import PermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.parsers import BaseParser
from rest_framework.response import Response


class ApplicationError(Exception):
    """A refusal the caller can act on. `code` is part of the API and never changes."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(
        self,
        code: str,
        message: str,
        *,
        fields: dict[str, Any] | None = None,
        status_code: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.fields = fields or {}
        if status_code is not None:
            self.status_code = status_code


class NotFound(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND

    def __init__(self, what: str) -> None:
        super().__init__("not_found", f"{what} not found.")


class Conflict(ApplicationError):
    status_code = status.HTTP_409_CONFLICT


def error_body(code: str, message: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


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


def _flatten(detail: Any) -> Any:
    if isinstance(detail, dict):
        return {str(key): _flatten(value) for key, value in detail.items()}
    if isinstance(detail, list):
        return [_flatten(item) for item in detail]
    return str(detail)


def _raised_while_parsing(exc: BaseException) -> bool:
    return any(
        isinstance(frame.f_locals.get("self"), BaseParser)
        for frame, _ in traceback.walk_tb(exc.__traceback__)
    )


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status_code)
    if isinstance(exc, RecursionError) and _raised_while_parsing(exc):
        # json raises RecursionError, not ValueError, for a body nested thousands deep,
        # and DRF's JSONParser turns only ValueError into a ParseError.
        exc = exceptions.ParseError("The request body is nested too deeply.")
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    from rest_framework.views import exception_handler  # DRF's views import this module

    response = exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    code = next((c for cls, c in _DRF_CODES if isinstance(exc, cls)), "error")
    if isinstance(exc, exceptions.ValidationError):
        detail = _flatten(exc.detail)
        if isinstance(detail, dict):
            non_field = detail.pop("non_field_errors", None)
            message = "; ".join(non_field) if non_field else "The request has invalid fields."
            fields = detail
        else:
            message = "; ".join(detail) if isinstance(detail, list) else str(detail)
            fields = {}
    else:
        message = str(exc.detail)
        fields = {}
    response.data = error_body(code, message, fields)
    return response
