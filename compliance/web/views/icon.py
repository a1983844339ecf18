"""The site's icon at /favicon.ico, where browsers look on a page that names none (the
Django admin's); the pages' own head links it (templates/base.html)."""

from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.views.decorators.http import require_GET


@require_GET
def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    return HttpResponsePermanentRedirect(static("web/earshot.svg"))
