"""The language of the pages, chosen per request.

In order: the signed-in person's saved setting (copied into the session at sign-in and
when they switch), the switcher's cookie, the browser's Accept-Language, English.
The API, the probes and /metrics stay English and skip all of it: their callers are
programs, and the eligibility path pays for every line it runs.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.utils import translation
from django.utils.cache import patch_vary_headers

from .languages import SESSION_KEY, supported

NOT_PAGES = ("/api/", "/healthz", "/readyz", "/metrics")


def page_language(request: HttpRequest) -> str:
    session = getattr(request, "session", None)
    saved = session.get(SESSION_KEY) if session is not None else None
    if saved and supported(saved):
        return saved
    return translation.get_language_from_request(request)


class PageLanguageMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.path_info.startswith(NOT_PAGES):
            return self.get_response(request)
        language = page_language(request)
        with translation.override(language):
            request.LANGUAGE_CODE = language
            response = self.get_response(request)
        patch_vary_headers(response, ("Accept-Language", "Cookie"))
        response.headers.setdefault("Content-Language", language)
        return response
