"""DRF's form parsers, refusing a NUL character (or a lone surrogate) in any field name or value,
and a multipart body in which no part could be found.

No field of Earshot's holds one, and PostgreSQL refuses it in any text parameter: a NUL
that reached a query would be a 500, not the 400 it deserves. JSON bodies are checked
before any view runs (RequestGuardMiddleware); form bodies are parsed only here.

Django's multipart parser reads a body that lacks the boundary its header names (JSON
sent under a multipart header, say) as no fields at all, which an endpoint whose fields
are all optional would take as "nothing given": a deletion request for a date range
would become one for everything. A multipart body holds at least one part (RFC 2046),
so a body with content and no part is refused as malformed.
"""

from typing import Any

from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ParseError, ValidationError

from .middleware import printable, text_problem


def _check(data: QueryDict) -> None:
    fields: dict[str, list[ErrorDetail]] = {}
    for key, values in data.lists():
        problem = text_problem(key) or next(
            (p for v in values if isinstance(v, str) and (p := text_problem(v))), None
        )
        if problem:
            fields[printable(key)] = [ErrorDetail(problem.message, code=problem.code)]
    if fields:
        raise ValidationError(fields)


class FormParser(parsers.FormParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        data = super().parse(stream, media_type, parser_context)
        _check(data)
        return data


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        parsed = super().parse(stream, media_type, parser_context)
        if not parsed.data and not parsed.files and _has_content(parser_context):
            raise ParseError(
                "The multipart body holds no part (is the boundary its Content-Type names in it?)."
            )
        _check(parsed.data)
        return parsed


def _has_content(parser_context: Any) -> bool:
    request = (parser_context or {}).get("request")
    length = request.META.get("CONTENT_LENGTH") if request is not None else None
    try:
        return int(length or 0) > 0
    except ValueError:
        return True
