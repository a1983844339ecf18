"""The error envelope in /api/schema/: every operation documents its 4xx answers as
docs/domain.md's `{"error": {"code", "message", "fields"}}` (a drf-spectacular
postprocessing hook, so no view has to repeat it)."""

from typing import Any

ERROR_COMPONENT = "Error"
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Every refusal: a stable machine-readable code, a message, and the "
    "fields at fault (empty when none).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "example": "validation_error"},
                "message": {"type": "string"},
                "fields": {
                    "type": "object",
                    "description": "Per field at fault, its problems: a code for machines "
                    "and a message for people.",
                    "additionalProperties": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string", "example": "required"},
                                "message": {"type": "string"},
                            },
                            "required": ["code", "message"],
                        },
                    },
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}

ERRORS_ALWAYS = {
    "400": "Bad input (a machine-readable code says what)",
    "401": "No credentials, or an invalid or revoked API key",
    "403": "Not allowed: a missing scope, or not an officer",
    "404": "Not found, or not yours",
    "406": "The Accept header asks for nothing this answers in",
    "429": "Throttled; retry after the Retry-After header's seconds",
}
ERRORS_WITH_BODY = {
    "409": "Conflicts with the current state",
    "411": "A chunked body (Transfer-Encoding): send it with a Content-Length",
    "413": "The request body exceeds the size limit",
    "415": "Unsupported media type",
}
_METHODS = {"get", "put", "post", "patch", "delete"}


def _error_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}}
        },
    }


def document_error_responses(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    result.setdefault("components", {}).setdefault("schemas", {})[ERROR_COMPONENT] = ERROR_SCHEMA
    for operations in result.get("paths", {}).values():
        for method, operation in operations.items():
            if method not in _METHODS:
                continue
            responses = operation.setdefault("responses", {})
            errors = dict(ERRORS_ALWAYS)
            if method in {"put", "post", "patch"}:
                errors.update(ERRORS_WITH_BODY)
            for status, description in errors.items():
                responses.setdefault(status, _error_response(description))
            # an error documented with a description alone gets the envelope too
            for status, response in responses.items():
                if status.startswith("4") and "content" not in response:
                    response["content"] = _error_response("")["content"]
    return result
