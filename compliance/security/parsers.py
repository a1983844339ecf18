"""DRF's form parsers, refusing a NUL character (or a lone surrogate) in any field name or value.

No field of Earshot's holds one, and PostgreSQL refuses it in any text parameter: a NUL
that reached a query would be a 500, not the 400 it deserves. JSON bodies are checked
before any view runs (RequestGuardMiddleware); form bodies are parsed only here.
"""

from typing import Any

from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ValidationError

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
        _check(parsed.data)
        return parsed
