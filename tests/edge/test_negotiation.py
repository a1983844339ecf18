"""The JSON-first negotiation chooses what DRF's own would, and leaves the rest to it."""

import pytest
from django.http import Http404
from rest_framework.exceptions import NotAcceptable
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BrowsableAPIRenderer, JSONRenderer, StaticHTMLRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from compliance.edge.negotiation import JsonFirstNegotiation


def _request(accept: str | None, query: str = "") -> Request:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    return Request(APIRequestFactory().post(f"/api/v1/recordings{query}", **headers))


def _choice(negotiation, request, renderers, suffix=None):
    try:
        renderer, media_type = negotiation.select_renderer(request, renderers, suffix)
    except NotAcceptable:
        return "406"
    except Http404:  # a format no renderer has
        return "404"
    return type(renderer), media_type


@pytest.mark.parametrize(
    ("accept", "query", "renderers", "suffix"),
    [
        (None, "", [JSONRenderer], None),
        ("*/*", "", [JSONRenderer], None),
        ("application/json", "", [JSONRenderer], None),
        ("application/json; indent=4", "", [JSONRenderer], None),
        ("application/*", "", [JSONRenderer], None),
        ("text/html", "", [JSONRenderer], None),
        ("text/html, */*;q=0.1", "", [JSONRenderer], None),
        (None, "?format=json", [JSONRenderer], None),
        (None, "?format=api", [JSONRenderer], None),
        (None, "", [JSONRenderer], "json"),
        (None, "", [StaticHTMLRenderer, JSONRenderer], None),
        ("application/json", "", [BrowsableAPIRenderer, JSONRenderer], None),
    ],
)
def test_it_chooses_what_drfs_negotiation_chooses(accept, query, renderers, suffix):
    request = _request(accept, query)
    made = [r() for r in renderers]

    assert _choice(JsonFirstNegotiation(), request, made, suffix) == _choice(
        DefaultContentNegotiation(), request, made, suffix
    )


def test_the_settings_use_it(settings):
    assert settings.REST_FRAMEWORK["DEFAULT_CONTENT_NEGOTIATION_CLASS"] == (
        "compliance.edge.negotiation.JsonFirstNegotiation"
    )
