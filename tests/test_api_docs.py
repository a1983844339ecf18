"""/api/schema/ as a caller reads it: every operation has a summary and a description
written for people (config/api_docs.py), and each operation's request body lists exactly
the media types the server accepts: a declared one is never a 415, any other always is."""

import json
import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from compliance.webhooks.services import subscription_create
from config.api_docs import OPERATIONS
from tests.factories import ProfileFactory, RecordingFactory

pytestmark = pytest.mark.django_db

MEDIA_TYPES = [
    "application/json",
    "multipart/form-data",
    "application/x-www-form-urlencoded",
    "text/plain",
]
METHODS = {"get", "put", "post", "patch", "delete"}
INTERNAL_WORDS = ["dispatch", "docstring", "DRF", "Declared for", "module"]


def _operations(schema: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, operations in schema["paths"].items()
        for method, operation in operations.items()
        if method in METHODS
    ]


@pytest.fixture
def schema(client) -> dict[str, Any]:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def test_every_operation_has_a_summary_and_a_description_for_people(schema):
    operations = _operations(schema)
    assert len(operations) > 40

    for path, method, operation in operations:
        where = f"{method.upper()} {path}"
        assert operation.get("summary", "").strip(), f"{where} has no summary"
        description = operation.get("description", "").strip()
        assert len(description) >= 40, f"{where} has no description"
        for word in INTERNAL_WORDS:
            assert word not in description, f"{where}: an internal note ({word!r})"


def test_every_written_description_belongs_to_an_operation(schema):
    ids = {operation["operationId"] for _, _, operation in _operations(schema)}

    assert set(OPERATIONS) - ids == set()


def test_summaries_are_unique(schema):
    summaries = [operation["summary"] for _, _, operation in _operations(schema)]

    assert len(summaries) == len(set(summaries))


def _body(media_type: str) -> tuple[bytes, str]:
    if media_type == "application/json":
        return b"{}", media_type
    if media_type == "multipart/form-data":
        boundary = "earshot-boundary"
        body = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n'
            f"--{boundary}--\r\n"
        ).encode()
        return body, f"{media_type}; boundary={boundary}"
    if media_type == "application/x-www-form-urlencoded":
        return b"x=1", media_type
    return b"x", media_type


@pytest.fixture
def callers(platform, settings) -> tuple[APIClient, APIClient, dict[str, str]]:
    """A key with every scope, a signed-in person (review items take a session), and the
    ids that let each operation get as far as reading its body."""
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    profile = ProfileFactory(external_id="p1")
    RecordingFactory(external_id="r1", profile=profile)
    subscription, _ = subscription_create(
        url="http://127.0.0.1:9/hook", events=["*"], description="", holds_copies=False, actor="t"
    )
    person = APIClient()
    person.force_login(get_user_model().objects.create(username="reviewer"))
    ids = {
        "profile_id": "p1",
        "purpose": "human_review",
        "webhook_id": subscription.external_id,
        "item_id": "no-such-item",
    }
    return platform, person, ids


def test_each_request_body_is_accepted_exactly_in_its_declared_media_types(schema, callers):
    platform, person, ids = callers
    wrong = []
    checked = 0
    for path, method, operation in _operations(schema):
        if "requestBody" not in operation:
            continue
        url = path.format(**ids)
        caller = person if "/review-items/" in path else platform
        declared = set(operation["requestBody"]["content"])
        for media_type in MEDIA_TYPES:
            body, content_type = _body(media_type)
            response = getattr(caller, method)(url, body, content_type=content_type)
            refused = response.status_code == 415
            if refused:
                assert response.json()["error"]["code"] == "unsupported_media_type"
            if refused == (media_type in declared):
                wrong.append(f"{method.upper()} {path} {media_type}: {response.status_code}")
            checked += 1

    assert wrong == []
    assert checked >= 15 * len(MEDIA_TYPES)


# --- the README's curl commands ------------------------------------------------------

README = Path(__file__).resolve().parent.parent / "README.md"


def _readme_curls() -> list[str]:
    """Every curl command in the README's shell blocks, continuation lines joined."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", README.read_text(), flags=re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if command.lstrip().startswith("curl ") and "/api/v1/" in command.replace(
                "$BASE", "/api/v1"
            ):
                commands.append(command.strip())
    return commands


def _curl_request(command: str) -> tuple[str, str, dict[str, Any] | None]:
    words = shlex.split(command.replace("$BASE", "http://127.0.0.1:8000/api/v1"))
    method, body, url = "GET", None, ""
    for i, word in enumerate(words):
        if word == "-X":
            method = words[i + 1]
        elif word == "-d":
            body = json.loads(words[i + 1])
            method = "POST" if method == "GET" else method
        elif "/api/v1/" in word:
            url = word
    return method, urlsplit(url).path, body


def _operation_for(schema: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    # a literal segment wins over a parameter (eligibility/batch, not eligibility/{id})
    for template, operations in sorted(schema["paths"].items(), key=lambda t: t[0].count("{")):
        pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
        if re.fullmatch(pattern, path):
            return operations.get(method.lower())
    return None


def _properties(schema: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    name = body["$ref"].rsplit("/", 1)[-1]
    return set(schema["components"]["schemas"][name]["properties"])


def test_the_readme_curls_call_operations_and_fields_the_schema_has(schema):
    commands = _readme_curls()
    assert len(commands) >= 12

    for command in commands:
        method, path, body = _curl_request(command)
        operation = _operation_for(schema, method, path)
        assert operation is not None, f"README: no {method} {path} in the schema"
        if body is not None:
            assert set(body) <= _properties(schema, operation), f"README: {command}"
