"""The page shown when a form fails Django's CSRF check (`CSRF_FAILURE_VIEW`).

Django's own page is unstyled and speaks of tokens and referers; a person who left a
form open overnight needs to hear that nothing changed and what to do next."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    # The reason is for developers (it names the missing cookie or header); it is not
    # shown, since the reader can do nothing with it but reload the page.
    return render(request, "403_csrf.html", status=403)
