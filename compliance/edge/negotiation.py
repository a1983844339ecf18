"""Content negotiation (DRF's `DEFAULT_CONTENT_NEGOTIATION_CLASS`).

DRF's negotiation parses the Accept header and ranks it against every renderer on
each request: for a view that only renders JSON, asked for JSON or anything, that
cost a single POST /api/v1/recordings more than its permission check
(bench/ingest.py). Such a request is answered at once here with what DRF would have
chosen; every other (an Accept naming something else, a format suffix or query
parameter, a view with other renderers) goes through DRF's own negotiation,
406 included.
"""

from collections.abc import Iterable
from typing import Any

from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request

JSON = "application/json"
# Accept headers for which DRF picks the JSON renderer with the type "application/json"
_PLAIN = frozenset({"*/*", JSON})


class JsonFirstNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: Any = None
    ) -> tuple[BaseRenderer, str]:
        renderers = renderers if isinstance(renderers, list) else list(renderers)  # DRF: a list
        meta = request.META
        if (
            format_suffix is None
            and len(renderers) == 1
            and type(renderers[0]) is JSONRenderer
            and meta.get("HTTP_ACCEPT", "*/*") in _PLAIN
            and not meta.get("QUERY_STRING")
        ):
            return renderers[0], JSON
        return super().select_renderer(request, renderers, format_suffix)
