"""Expected refusals log one warning line without a traceback (compliance/core/logs.py)."""

import io
import logging
from collections.abc import Iterator

import pytest
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance.core.logs import ExpectedRefusals
from tests.web.conftest import person, verify_session

pytestmark = pytest.mark.django_db


@pytest.fixture
def console() -> Iterator[io.StringIO]:
    """What the configured console handler writes, for the duration of the test."""
    [handler] = [
        h
        for h in logging.getLogger().handlers
        if any(isinstance(f, ExpectedRefusals) for f in h.filters)
    ]
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    previous = handler.setStream(stream)
    try:
        yield stream
    finally:
        handler.setStream(previous)


def test_a_non_officer_on_the_officer_pages_logs_one_warning_line(client: Client, console):
    user = person("mallory")
    device = TOTPDevice.objects.create(user=user, name="app", confirmed=True)
    client.force_login(user)
    verify_session(client, device)

    assert client.get("/officer/").status_code == 403

    lines = console.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "WARNING django.request Forbidden (Permission denied): /officer/" in lines[0]
    assert "Traceback" not in console.getvalue()


def test_an_over_large_form_body_logs_one_warning_line(client: Client, console, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000

    response = client.post("/accounts/login/", {"username": "x" * 5_000, "password": "y"})

    assert response.status_code == 400
    lines = console.getvalue().splitlines()
    assert len(lines) == 1, lines
    assert "WARNING django.security.RequestDataTooBig" in lines[0]
    assert "Traceback" not in console.getvalue()


def test_a_server_error_keeps_its_traceback():
    record = logging.LogRecord(
        "django.request", logging.ERROR, __file__, 1, "Internal Server Error", (), None
    )
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record.exc_info = sys.exc_info()
    record.status_code = 500

    ExpectedRefusals().filter(record)

    assert record.exc_info is not None
    assert record.levelno == logging.ERROR
