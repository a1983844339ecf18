"""Schemathesis against /api/schema/, through the WSGI app: for every operation, a fixed
sequence of generated requests (valid and invalid) with a key holding every scope.
No answer may be a 500, and every answer must be one the schema documents, in the
documented content type and shape.

Deterministic (hypothesis derandomize, no example database) and bounded
(MAX_EXAMPLES per operation and mode), so it runs the same in CI every time.
"""

from typing import Any

import pytest
import schemathesis
from django.core import signals
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from compliance.clients.authentication import forget_cached_keys
from compliance.clients.scopes import SCOPES
from compliance.clients.services import service_client_create
from tests.factories import ProfileFactory, RecordingFactory

MAX_EXAMPLES = 20

app = get_wsgi_application()
schema = schemathesis.openapi.from_wsgi("/api/schema/", app)
schema.config.generation.update(with_security_parameters=False, deterministic=True)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(autouse=True)
def _keep_the_test_connection() -> Any:
    """Called straight through WSGI, Django would close the database connection at the
    end of each request (it is inside the test's transaction, so it looks unusable);
    Django's own test client avoids that the same way."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def api_key(db) -> str:
    """A key with every scope, and a little data for the generated ids to miss or hit."""
    forget_cached_keys()
    _, key = service_client_create(name="schemathesis", scopes=sorted(SCOPES))
    profile = ProfileFactory(external_id="p1")
    RecordingFactory(external_id="r1", profile=profile)
    return key


@pytest.mark.django_db
@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_operation_answers_500_or_off_schema(case: Any, api_key: str) -> None:
    case.call_and_validate(headers={"Authorization": f"Api-Key {api_key}"}, checks=CHECKS)
