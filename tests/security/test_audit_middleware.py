"""Who changed what: the request's user and address on the history entries it writes,
through one receiver connected once, and no signal wiring per request."""

import pytest
from auditlog.models import LogEntry
from django.contrib.auth import get_user_model
from django.db.models.signals import pre_save
from django.http import HttpResponse
from django.test import RequestFactory

from compliance.security.middleware import AuditContextMiddleware
from tests.factories import ProfileFactory


def _through_middleware(request, view):
    return AuditContextMiddleware(view)(request)


@pytest.mark.django_db
def test_a_change_made_in_a_request_names_its_user_and_address():
    officer = get_user_model().objects.create_user("officer", password="x")
    profile = ProfileFactory()
    request = RequestFactory().post("/officer/anything", REMOTE_ADDR="192.0.2.7")
    request.user = officer

    def view(request):
        profile.is_child = not profile.is_child
        profile.save()
        return HttpResponse("ok")

    _through_middleware(request, view)

    entry = LogEntry.objects.get_for_object(profile).order_by("-timestamp").first()
    assert (entry.actor, entry.remote_addr) == (officer, "192.0.2.7")


def _receivers(request) -> tuple[int, int, int]:
    """pre_save's receiver count before, during and after `request` passes through."""
    during = []

    def view(request):
        during.append(len(pre_save.receivers))
        return HttpResponse("ok")

    before = len(pre_save.receivers)
    _through_middleware(request, view)
    return before, during[0], len(pre_save.receivers)


@pytest.mark.parametrize("method", ["get", "head", "options", "post", "put", "delete"])
def test_no_request_connects_a_receiver(method):
    """The receiver that names the request is connected once, when the app is ready:
    connecting one per request (auditlog's way) cost a tenth of a single POST."""
    request = getattr(RequestFactory(), method)("/api/v1/profiles")
    request.user = get_user_model()(username="nobody")
    before, during, after = _receivers(request)
    assert during == before == after


@pytest.mark.django_db
def test_a_change_made_outside_any_request_names_no_one():
    officer = get_user_model().objects.create_user("officer", password="x")
    request = RequestFactory().post("/officer/anything", REMOTE_ADDR="192.0.2.7")
    request.user = officer
    _through_middleware(request, lambda request: HttpResponse("ok"))
    profile = ProfileFactory()

    profile.is_child = not profile.is_child
    profile.save()

    entry = LogEntry.objects.get_for_object(profile).order_by("-timestamp").first()
    assert (entry.actor, entry.remote_addr) == (None, None)


@pytest.mark.django_db
def test_a_safe_request_names_no_one_on_what_it_writes():
    officer = get_user_model().objects.create_user("officer", password="x")
    profile = ProfileFactory()
    request = RequestFactory().get("/officer/anything", REMOTE_ADDR="192.0.2.7")
    request.user = officer

    def view(request):
        profile.is_child = not profile.is_child
        profile.save()
        return HttpResponse("ok")

    _through_middleware(request, view)

    entry = LogEntry.objects.get_for_object(profile).order_by("-timestamp").first()
    assert (entry.actor, entry.remote_addr) == (None, None)


def test_the_settings_use_it_in_place_of_auditlogs_own(settings):
    assert "compliance.security.middleware.AuditContextMiddleware" in settings.MIDDLEWARE
    assert "auditlog.middleware.AuditlogMiddleware" not in settings.MIDDLEWARE


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("hops", "forwarded", "port", "address", "expected_port"),
    [
        # no proxy: what the client claims counts for nothing
        (0, "203.0.113.9", "-5", "192.0.2.7", None),
        (1, "203.0.113.9, 198.51.100.4", "8443", "198.51.100.4", 8443),  # the proxy's entry
        (1, "not-an-address", "99999", None, None),  # junk from a proxy: no address, no 500
    ],
)
def test_the_history_names_the_address_the_throttles_trust(
    settings, hops, forwarded, port, address, expected_port
):
    settings.TRUSTED_PROXY_HOPS = hops
    profile = ProfileFactory()
    request = RequestFactory().post(
        "/officer/anything",
        REMOTE_ADDR="192.0.2.7",
        HTTP_X_FORWARDED_FOR=forwarded,
        HTTP_X_FORWARDED_PORT=port,
    )
    request.user = get_user_model().objects.create_user("officer", password="x")

    def view(request):
        profile.is_child = not profile.is_child
        profile.save()
        return HttpResponse("ok")

    _through_middleware(request, view)

    entry = LogEntry.objects.get_for_object(profile).order_by("-timestamp").first()
    assert (entry.remote_addr, entry.remote_port) == (address, expected_port)
