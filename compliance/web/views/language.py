"""The language switcher every page shows: a plain POST form, so it works without
JavaScript; a signed-in person's choice is saved and follows them to other browsers."""

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_POST
from django.views.i18n import set_language

from ..languages import SESSION_KEY, supported
from ..services import page_language_set


@require_POST
def switch_language(request: HttpRequest) -> HttpResponse:
    # Django's view checks `next` against the host and sets the cookie.
    response = set_language(request)
    language = request.POST.get("language", "")
    if supported(language):
        request.session[SESSION_KEY] = language
        if request.user.is_authenticated:
            page_language_set(user=request.user, language=language)
    return response
