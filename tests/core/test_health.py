import json
from contextlib import contextmanager

import pytest
import yaml
from django.db import OperationalError
from drf_spectacular.validation import validate_schema

from compliance.core import views
from config.celery import app as celery_app
from tests.factories import RecordingFactory

CONTRACT_PATHS = [
    "/api/v1/accounts",
    "/api/v1/profiles",
    "/api/v1/profiles/{profile_id}/consents",
    "/api/v1/profiles/{profile_id}/consents/{purpose}",
    "/api/v1/profiles/{profile_id}/consents/{purpose}/history",
    "/api/v1/profiles/{profile_id}/retention",
    "/api/v1/recordings",
    "/api/v1/recordings/{recording_id}",
    "/api/v1/consent-defaults",
    "/api/v1/consent-defaults/{id}",
    "/api/v1/transfer-rules",
    "/api/v1/transfer-rules/{id}",
    "/api/v1/eligibility/{recording_id}",
    "/api/v1/eligibility/batch",
]


class _Broker:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    @contextmanager
    def __call__(self):
        yield self

    def ensure_connection(self, **kwargs):
        if self.error is not None:
            raise self.error


def test_healthz_answers_without_dependencies(client):
    response = client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_answers_json_for_the_configured_broker(client):
    response = client.get("/readyz")

    assert response.status_code in (200, 503)
    body = response.json()
    assert body["checks"]["database"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "ledger"}
    assert (body["status"] == "ok") == (response.status_code == 200)


@pytest.mark.django_db
def test_readyz_is_200_when_database_and_broker_answer(client, monkeypatch):
    monkeypatch.setattr(celery_app, "connection_for_write", _Broker())

    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "checks": {"database": "ok", "broker": "ok", "ledger": "ok"},
    }


@pytest.mark.django_db
def test_readyz_is_503_naming_a_broker_that_does_not_answer(client, monkeypatch):
    monkeypatch.setattr(
        celery_app, "connection_for_write", _Broker(ConnectionRefusedError("redis down"))
    )

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"] == {
        "database": "ok",
        "broker": "error: ConnectionRefusedError",
        "ledger": "ok",
    }
    assert "redis down" not in json.dumps(body)


def test_readyz_is_503_naming_a_database_that_does_not_answer(client, monkeypatch):
    class _DeadDatabase:
        def cursor(self):
            raise OperationalError("connection refused")

    monkeypatch.setattr(views, "connection", _DeadDatabase())
    monkeypatch.setattr(celery_app, "connection_for_write", _Broker())

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"] == {"database": "error: OperationalError", "broker": "ok"}


@pytest.mark.django_db
def test_the_schema_is_valid_openapi_with_every_contract_path(client):
    response = client.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    validate_schema(schema)
    assert schema["openapi"].startswith("3.")
    missing = [path for path in CONTRACT_PATHS if path not in schema["paths"]]
    assert missing == []
    assert "ApiKeyAuth" in schema["components"]["securitySchemes"]
    consent_put = schema["paths"]["/api/v1/profiles/{profile_id}/consents/{purpose}"]["put"]
    assert consent_put["operationId"] == "consents_set"


@pytest.mark.django_db
def test_the_schema_is_also_served_as_json(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    assert "/api/v1/recordings" in json.loads(response.content)["paths"]


@pytest.mark.django_db
def test_the_interactive_docs_answer(client):
    response = client.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()
    assert b"/api/schema/" in response.content


@pytest.mark.django_db
def test_metrics_expose_earshot_gauges(client):
    RecordingFactory.create_batch(2)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    assert 'earshot_recordings{state="active"} 2.0' in text
    ledger_line = next(
        line for line in text.splitlines() if line.startswith("earshot_ledger_entries ")
    )
    assert float(ledger_line.split()[1]) >= 0
