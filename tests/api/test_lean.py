"""The lean way through the single POST /api/v1/recordings (compliance/api/lean.py)
answers every request exactly as DRF's dispatch does: the same status, headers and
bytes, with the lean way on and off."""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
import time_machine
from django.core.cache import cache
from rest_framework.test import APIClient
from rest_framework.views import APIView

from compliance.api.recordings import RecordingCreateApi
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Artefact, Recording
from compliance.security.throttling import throttle_blocks_forget
from tests.factories import ProfileFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/recordings"
NOW = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _frozen() -> Any:
    """One instant for both answers (their created_at, a throttle's wait)."""
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture(autouse=True)
def _profile() -> None:
    ProfileFactory(external_id="p-1")


@pytest.fixture
def dispatched(monkeypatch) -> list[str]:
    """The requests that went through DRF's dispatch."""
    seen: list[str] = []
    original = APIView.dispatch

    def spy(view: APIView, request: Any, *args: Any, **kwargs: Any) -> Any:
        seen.append(request.method)
        return original(view, request, *args, **kwargs)

    monkeypatch.setattr(APIView, "dispatch", spy)
    return seen


def _body(external_id: str = "r-0001", **changes: Any) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "profile": "p-1",
        "recorded_at": "2026-01-31T12:00:00Z",
        "transcript": "turn on the lights",
        **changes,
    }


def _answer(response: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.headers.items()), response.content


def _lean_and_drf(monkeypatch, send: Callable[[], Any]) -> tuple[Any, Any]:
    lean = send()
    monkeypatch.setattr(RecordingCreateApi, "lean", False)
    drf = send()
    monkeypatch.setattr(RecordingCreateApi, "lean", True)
    return lean, drf


def test_a_created_recording_is_answered_as_drf_answers_it_without_its_dispatch(
    platform, monkeypatch, dispatched
):
    lean = platform.post(URL, _body("r-lean", flags=["sensitive"]), format="json")
    assert dispatched == []
    monkeypatch.setattr(RecordingCreateApi, "lean", False)
    drf = platform.post(URL, _body("r-drf0", flags=["sensitive"]), format="json")

    assert dispatched == ["POST"]
    assert lean.status_code == drf.status_code == 201
    assert sorted(lean.headers.items()) == sorted(drf.headers.items())
    assert lean.content == drf.content.replace(b"r-drf0", b"r-lean")
    assert Recording.objects.count() == 2
    assert LedgerEntry.objects.filter(kind="recordings.registered").count() == 2


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "application/json; charset=UTF8"]
)
def test_json_declared_utf8_goes_the_lean_way(api_client_with_scopes, dispatched, content_type):
    client = api_client_with_scopes("recordings:write")

    response = client.post(URL, json.dumps(_body()), content_type=content_type)

    assert response.status_code == 201, response.content
    assert dispatched == []


_NO_TIME = {"external_id": "r-1", "profile": "p-1"}


def _json(client: APIClient, body: Any, **extra: Any) -> Any:
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post(URL, text, content_type="application/json", **extra)


def _recorded() -> None:
    Recording.objects.create(
        external_id="r-0001", profile=None, recorded_at=NOW, created_at=NOW, state="active"
    )


# (request, whether it goes the lean way until its error is raised)
REFUSALS: dict[str, tuple[Callable[[APIClient], Any], bool]] = {
    "a field missing": (lambda c: _json(c, _NO_TIME), True),
    "a field of the wrong type": (lambda c: _json(c, _body(external_id=5)), True),
    "an unknown field": (lambda c: _json(c, _body(colour="red")), True),
    "an unknown flag": (lambda c: _json(c, _body(flags=["loud"])), True),
    "a time without a zone": (lambda c: _json(c, _body(recorded_at="2026-01-31T12:00")), True),
    "a time in the future": (lambda c: _json(c, _body(recorded_at="2030-01-01T00:00Z")), True),
    "an unknown profile": (lambda c: _json(c, _body(profile="p-404")), True),
    "audio in JSON": (lambda c: _json(c, _body(audio="UklGRg==")), True),
    "not an object": (lambda c: _json(c, [_body()]), False),
    "not JSON": (lambda c: _json(c, '{"external_id": '), False),
    "NaN": (lambda c: _json(c, '{"external_id": NaN}'), False),
    "empty": (lambda c: _json(c, ""), False),
    "not UTF-8": (lambda c: _json(c, b'{"external_id": "\xff"}'), False),
    "JSON declared in another charset": (
        lambda c: c.post(
            URL, json.dumps(_NO_TIME), content_type="application/json; charset=latin-1"
        ),
        False,
    ),
    "a form": (lambda c: c.post(URL, {"external_id": "r-1"}), False),
    "a query string": (lambda c: c.post(URL + "?format=json", _NO_TIME, format="json"), False),
    "an Accept the view cannot answer": (
        lambda c: _json(c, _body(), HTTP_ACCEPT="text/html"),
        False,
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refused_request_is_answered_as_drf_answers_it(
    case, api_client_with_scopes, monkeypatch, dispatched
):
    send, lean_way = REFUSALS[case]
    client = api_client_with_scopes("recordings:write")

    lean, drf = _lean_and_drf(monkeypatch, lambda: send(client))

    assert 400 <= lean.status_code < 500, lean.content
    assert _answer(lean) == _answer(drf)
    assert dispatched == ([] if lean_way else ["POST"]) + ["POST"]
    assert not Recording.objects.exists()
    assert not LedgerEntry.objects.filter(kind="recordings.registered").exists()


def test_a_taken_external_id_is_answered_as_drf_answers_it(platform, monkeypatch):
    assert platform.post(URL, _body(), format="json").status_code == 201

    lean, drf = _lean_and_drf(monkeypatch, lambda: platform.post(URL, _body(), format="json"))

    assert lean.status_code == 409
    assert _answer(lean) == _answer(drf)
    assert (Recording.objects.count(), Artefact.objects.count()) == (1, 1)


@pytest.mark.parametrize(
    "authorization",
    [None, "Api-Key not-a-key", "Bearer abc", "scope"],
    ids=["no key", "an unknown key", "another scheme", "a key without the scope"],
)
def test_a_caller_refused_is_answered_as_drf_answers_it(
    authorization, api_client_with_scopes, monkeypatch, dispatched
):
    client = api_client_with_scopes("recordings:read")
    if authorization != "scope":
        client = APIClient()
        if authorization is not None:
            client.credentials(HTTP_AUTHORIZATION=authorization)

    lean, drf = _lean_and_drf(monkeypatch, lambda: client.post(URL, _body(), format="json"))

    assert lean.status_code in (401, 403)
    assert _answer(lean) == _answer(drf)
    assert dispatched == ["POST", "POST"]
    assert not Recording.objects.exists()


def test_a_throttled_request_is_answered_as_drf_answers_it(
    api_client_with_scopes, monkeypatch, settings, dispatched
):
    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {
            **settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"],
            "client": "1/min",
        },
    }
    client = api_client_with_scopes("recordings:write")
    answers = []
    for lean in (True, False):
        monkeypatch.setattr(RecordingCreateApi, "lean", lean)
        cache.clear()
        throttle_blocks_forget()
        first = client.post(URL, _body(f"r-{lean:d}"), format="json")
        answers.append(client.post(URL, _body(f"r-{lean:d}-again"), format="json"))
        assert first.status_code == 201

    assert answers[0].status_code == 429
    assert answers[0]["Retry-After"] == "60"
    assert _answer(answers[0]) == _answer(answers[1])
    assert dispatched == ["POST", "POST"]  # DRF's two, and none the lean way
    assert Recording.objects.count() == 2


def test_an_idempotent_retry_goes_drfs_way_and_replays_the_first_answer(
    platform, monkeypatch, dispatched
):
    def twice(key: str, external_id: str) -> tuple[Any, Any]:
        send = lambda: platform.post(  # noqa: E731
            URL, _body(external_id), format="json", HTTP_IDEMPOTENCY_KEY=key
        )
        return send(), send()

    lean_first, lean_replay = twice("key-1", "r-lean")
    monkeypatch.setattr(RecordingCreateApi, "lean", False)
    drf_first, drf_replay = twice("key-2", "r-drf0")

    assert dispatched == ["POST"] * 4
    assert lean_replay["Idempotent-Replayed"] == "true"
    assert lean_first.content == lean_replay.content
    for lean, drf in ((lean_first, drf_first), (lean_replay, drf_replay)):
        assert lean.status_code == drf.status_code == 201
        assert lean.content == drf.content.replace(b"r-drf0", b"r-lean")
        assert sorted(lean.headers.items()) == sorted(drf.headers.items())
    assert Recording.objects.count() == 2
