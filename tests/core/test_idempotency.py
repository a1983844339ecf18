"""Idempotency-Key on every creating POST: a retry replays the first answer and creates
nothing; a reused key with another body, or one still running, is refused."""

import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.utils import timezone
from rest_framework.parsers import JSONParser
from rest_framework.request import Request
from rest_framework.test import APIClient, APIRequestFactory

from compliance.accounts.models import Account, Profile
from compliance.api import accounts as account_apis
from compliance.consent.models import ConsentDefault
from compliance.core.idempotency import _fingerprint, idempotency_keys_cleanup
from compliance.core.models import IdempotencyKey
from compliance.core.tasks import idempotency_keys_cleanup_task
from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Recording
from compliance.retention.models import DeletionRequest, LegalHold, RetentionPolicy
from compliance.sampling.models import ReviewItem
from compliance.transfers.models import TransferRule
from tests.conftest import postgres_only
from tests.factories import AccountFactory, RecordingFactory
from tests.sampling.conftest import reviewable
from tests.web.conftest import make_household

KEY = "3f1c7a52-6a8e-4f0e-9c1b-2d4b8f0e7a11"


@dataclass
class Creating:
    """A creating POST: its path, a body (made after the setup), the rows it creates."""

    path: str
    body: Callable[[], dict[str, Any]]
    rows: Callable[[], int]
    multipart: bool = False


def _profile() -> Profile:
    return Profile.objects.get_or_create(
        external_id="p-idem", defaults={"account": AccountFactory(external_id="a-idem")}
    )[0]


def _sampleable() -> dict[str, Any]:
    reviewable(jurisdiction="DE")
    return {"purpose": "human_review", "size": 1, "reviewer_location": "DE"}


CREATING = {
    "accounts": Creating(
        "/api/v1/accounts",
        lambda: {"external_id": "acct-new", "jurisdiction": "DE"},
        Account.objects.count,
    ),
    "profiles": Creating(
        "/api/v1/profiles",
        lambda: {"external_id": "prof-new", "account": _profile().account.external_id},
        Profile.objects.filter(external_id="prof-new").count,
    ),
    "recordings": Creating(
        "/api/v1/recordings",
        lambda: {
            "external_id": "rec-new",
            "profile": _profile().external_id,
            "recorded_at": "2026-01-02T03:04:05Z",
            "transcript": "turn on the lights",
        },
        Recording.objects.count,
    ),
    "recordings-multipart": Creating(
        "/api/v1/recordings",
        lambda: {
            "external_id": "rec-new",
            "profile": _profile().external_id,
            "recorded_at": "2026-01-02T03:04:05Z",
        },
        Recording.objects.count,
        multipart=True,
    ),
    "retention-policies": Creating(
        "/api/v1/retention-policies",
        lambda: {"jurisdiction": "DE", "category": "audio", "retention_days": 30},
        RetentionPolicy.objects.count,
    ),
    "legal-holds": Creating(
        "/api/v1/legal-holds",
        lambda: {"profile": _profile().external_id, "reason": "inquiry", "case_reference": "C-1"},
        LegalHold.objects.count,
    ),
    "consent-defaults": Creating(
        "/api/v1/consent-defaults",
        lambda: {"jurisdiction": "DE", "purpose": "model_training", "granted": True},
        ConsentDefault.objects.count,
    ),
    "transfer-rules": Creating(
        "/api/v1/transfer-rules",
        lambda: {"jurisdiction": "DE", "reviewer_location": "IE"},
        TransferRule.objects.count,
    ),
    "deletion-requests": Creating(
        "/api/v1/profiles/p-idem/deletion-requests",
        lambda: {"from": "2026-01-01T00:00:00Z"} if _profile() else {},
        DeletionRequest.objects.count,
    ),
    "samples": Creating("/api/v1/samples", _sampleable, ReviewItem.objects.count),
}


def post(client: APIClient, case: Creating, body: dict[str, Any], key: str | None = KEY) -> Any:
    headers = {} if key is None else {"HTTP_IDEMPOTENCY_KEY": key}
    if case.multipart:
        return client.post(case.path, body, format="multipart", **headers)
    return client.post(case.path, body, format="json", **headers)


def with_audio(body: dict[str, Any], voice_clip: Any) -> dict[str, Any]:
    return {**body, "audio": voice_clip.open("rb")}


@pytest.mark.django_db
@pytest.mark.parametrize("name", list(CREATING))
def test_a_retry_with_the_key_replays_the_first_answer_and_creates_nothing(
    name, platform, voice_clip
):
    case = CREATING[name]
    body = case.body()
    first_body = with_audio(body, voice_clip) if case.multipart else body
    first = post(platform, case, first_body)
    assert 200 <= first.status_code < 300, first.content
    rows, entries = case.rows(), LedgerEntry.objects.count()

    retry_body = with_audio(body, voice_clip) if case.multipart else body
    retry = post(platform, case, retry_body)

    assert (retry.status_code, retry.content) == (first.status_code, first.content)
    assert retry["Content-Type"] == first["Content-Type"]
    assert retry["Idempotent-Replayed"] == "true"
    assert (case.rows(), LedgerEntry.objects.count()) == (rows, entries)
    assert rows == 1


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["accounts", "retention-policies", "deletion-requests"])
def test_the_same_key_with_another_body_is_a_422_and_creates_nothing(name, platform):
    case = CREATING[name]
    body = case.body()
    assert post(platform, case, body).status_code in (201, 202)
    rows = case.rows()
    other = {**body, "external_id": "acct-other", "retention_days": 31, "from": None}

    response = post(platform, case, other)

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert case.rows() == rows


@pytest.mark.django_db
def test_a_multipart_retry_with_other_audio_is_a_422(platform, voice_clip, tmp_path):
    case = CREATING["recordings-multipart"]
    body = case.body()
    assert post(platform, case, with_audio(body, voice_clip)).status_code == 201
    other = tmp_path / "other.wav"
    other.write_bytes(voice_clip.read_bytes()[:-1] + b"\x01")

    response = post(platform, case, {**body, "audio": other.open("rb")})

    assert response.status_code == 422
    assert Recording.objects.count() == 1


@pytest.mark.django_db
def test_the_same_json_in_another_key_order_or_spacing_is_the_same_request(platform):
    first = platform.post(
        "/api/v1/accounts",
        '{"external_id": "acct-1", "jurisdiction": "DE"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=KEY,
    )
    retry = platform.post(
        "/api/v1/accounts",
        '{"jurisdiction":"DE","external_id":"acct-1"}',
        content_type="application/json",
        HTTP_IDEMPOTENCY_KEY=KEY,
    )

    assert (first.status_code, retry.status_code) == (201, 201)
    assert retry.content == first.content
    assert Account.objects.count() == 1


@pytest.mark.django_db
def test_keys_are_kept_per_caller(api_client_with_scopes):
    one, other = api_client_with_scopes("accounts:write"), api_client_with_scopes("accounts:write")
    case = CREATING["accounts"]

    first = post(one, case, {"external_id": "acct-1", "jurisdiction": "DE"})
    second = post(other, case, {"external_id": "acct-2", "jurisdiction": "DE"})

    assert (first.status_code, second.status_code) == (201, 201)
    assert Account.objects.count() == 2
    assert IdempotencyKey.objects.filter(key=KEY).count() == 2


@pytest.mark.django_db
def test_a_signed_in_owner_retrying_a_deletion_request_gets_the_same_request():
    household = make_household()
    owner = Client()
    owner.force_login(household.user)
    path = f"/api/v1/profiles/{household.adult.external_id}/deletion-requests"

    first = owner.post(path, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY)
    retry = owner.post(path, {}, content_type="application/json", HTTP_IDEMPOTENCY_KEY=KEY)

    assert (first.status_code, retry.status_code) == (202, 202)
    assert retry.json()["id"] == first.json()["id"]
    assert DeletionRequest.objects.count() == 1
    assert IdempotencyKey.objects.get().caller == f"user:{household.user.pk}"


@pytest.mark.django_db
def test_without_the_header_every_post_creates(platform):
    case = CREATING["retention-policies"]
    for _ in range(2):
        assert post(platform, case, case.body(), key=None).status_code == 201
    assert RetentionPolicy.objects.count() == 2
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("key", "code"),
    [
        ("", "invalid_idempotency_key"),
        (" ", "invalid_idempotency_key"),
        ("a" * 256, "invalid_idempotency_key"),
        ("caf\u00e9", "invalid_idempotency_key"),
        ("tab\there", "invalid_idempotency_key"),
        # the request guard refuses a NUL in any header before a view runs
        ("nul\x00", "malformed_request"),
    ],
)
def test_a_malformed_key_is_a_400_and_creates_nothing(key, code, platform):
    case = CREATING["accounts"]

    response = post(platform, case, case.body(), key=key)

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert not Account.objects.exists()
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_a_key_of_255_printable_characters_is_accepted(platform):
    case = CREATING["accounts"]
    key = "".join(chr(32 + i % 95) for i in range(255))

    assert post(platform, case, case.body(), key=key).status_code == 201
    assert post(platform, case, case.body(), key=key)["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_a_4xx_is_not_kept_so_the_retry_runs_again(platform):
    case = CREATING["profiles"]
    body = {"external_id": "prof-new", "account": "acct-later"}

    refused = post(platform, case, body)
    AccountFactory(external_id="acct-later")
    retried = post(platform, case, body)

    assert refused.status_code == 400
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried
    assert Profile.objects.filter(external_id="prof-new").count() == 1


@pytest.mark.django_db
def test_a_failed_attempt_is_rolled_back_with_its_key_and_the_retry_runs(platform, monkeypatch):
    case = CREATING["accounts"]
    real = account_apis.account_create

    def fails_after_writing(**kwargs: Any) -> Any:
        real(**kwargs)
        raise RuntimeError("the process failed after the write")

    monkeypatch.setattr(account_apis, "account_create", fails_after_writing)
    with pytest.raises(RuntimeError):
        post(platform, case, case.body())
    assert not Account.objects.exists()  # the write went with the request's transaction
    assert not IdempotencyKey.objects.exists()

    monkeypatch.setattr(account_apis, "account_create", real)
    retried = post(platform, case, case.body())

    assert retried.status_code == 201
    assert Account.objects.count() == 1


def _fingerprint_of(body: dict[str, Any]) -> str:
    """What the server computes for a JSON POST of `body` to /api/v1/accounts."""
    request = APIRequestFactory().post("/api/v1/accounts", body, format="json")
    return _fingerprint(Request(request, parsers=[JSONParser()]))


@pytest.mark.django_db
def test_a_crashed_attempts_key_is_in_flight_until_its_lease_ends(platform):
    case = CREATING["accounts"]
    body = {"external_id": "acct-1", "jurisdiction": "DE"}
    post(platform, case, case.body(), key="another-key")  # to learn this client's caller
    caller = IdempotencyKey.objects.get().caller
    now = timezone.now()
    IdempotencyKey.objects.create(  # what an attempt killed in its handler leaves
        caller=caller,
        key=KEY,
        fingerprint=_fingerprint_of(body),
        created_at=now,
        locked_until=now + timedelta(seconds=120),
        token="dead",
    )

    other_body = post(platform, case, {**body, "jurisdiction": "FR"})
    during = post(platform, case, body)
    with time_machine.travel(now + timedelta(seconds=121)):
        after = post(platform, case, body)

    assert other_body.json()["error"]["code"] == "idempotency_key_reused"
    assert during.status_code == 409
    assert during.json()["error"]["code"] == "idempotency_key_in_flight"
    assert after.status_code == 201
    assert Account.objects.filter(external_id="acct-1").count() == 1
    assert IdempotencyKey.objects.get(key=KEY).locked_until is None


@pytest.mark.django_db
def test_a_key_lives_24_hours_then_may_be_used_again_and_is_cleaned_up(platform):
    case = CREATING["accounts"]
    start = timezone.now()
    with time_machine.travel(start, tick=False):
        assert (
            post(platform, case, {"external_id": "acct-1", "jurisdiction": "DE"}).status_code == 201
        )
    with time_machine.travel(start + timedelta(hours=23, minutes=59), tick=False):
        replay = post(platform, case, {"external_id": "acct-1", "jurisdiction": "DE"})
        assert replay["Idempotent-Replayed"] == "true"
        assert idempotency_keys_cleanup() == 0
    with time_machine.travel(start + timedelta(hours=24, seconds=1), tick=False):
        fresh = post(platform, case, {"external_id": "acct-2", "jurisdiction": "DE"})
        assert fresh.status_code == 201
        assert Account.objects.count() == 2
    with time_machine.travel(start + timedelta(hours=30), tick=False):
        post(platform, case, case.body(), key="second-key")
    with time_machine.travel(start + timedelta(hours=48, seconds=2), tick=False):
        assert idempotency_keys_cleanup_task() == 1  # the first key's row, renewed at 24 h
    assert list(IdempotencyKey.objects.values_list("key", flat=True)) == ["second-key"]


@pytest.mark.django_db
def test_the_batch_endpoints_ignore_the_key(platform):
    recording = RecordingFactory()
    body = {"purpose": "model_training", "recordings": [recording.external_id]}

    answers = [
        platform.post("/api/v1/eligibility/batch", body, format="json", HTTP_IDEMPOTENCY_KEY=KEY)
        for _ in range(2)
    ]

    assert [a.status_code for a in answers] == [200, 200]
    assert all("Idempotent-Replayed" not in a for a in answers)
    assert not IdempotencyKey.objects.exists()


@pytest.mark.django_db
def test_the_schema_documents_the_header_on_every_creating_post_and_no_batch(client):
    schema = client.get("/api/schema/?format=json").json()

    def has_header(path: str) -> bool:
        operation = schema["paths"][path]["post"]
        return any(
            p["in"] == "header" and p["name"] == "Idempotency-Key"
            for p in operation.get("parameters", [])
        ) and {"409", "422"} <= set(operation["responses"])

    creating = {case.path.replace("p-idem", "{profile_id}") for case in CREATING.values()}
    assert all(has_header(path) for path in creating), creating
    assert not has_header("/api/v1/eligibility/batch")


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_two_concurrent_requests_with_one_key_create_once_and_the_other_is_told_in_flight(
    monkeypatch, api_client_with_scopes
):
    client_key = api_client_with_scopes("accounts:write")._credentials["HTTP_AUTHORIZATION"]
    real = account_apis.account_create
    entered, release = threading.Event(), threading.Event()

    def slow(**kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(account_apis, "account_create", slow)
    barrier = threading.Barrier(2)
    answers: queue.Queue = queue.Queue()

    def send() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=client_key)
            barrier.wait(5)
            answers.put(post(client, CREATING["accounts"], CREATING["accounts"].body()))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    assert entered.wait(10)
    loser = answers.get(timeout=10)  # answered while the winner still runs
    release.set()
    winner = answers.get(timeout=10)
    for thread in threads:
        thread.join(10)

    assert loser.status_code == 409
    assert loser.json()["error"]["code"] == "idempotency_key_in_flight"
    assert winner.status_code == 201
    assert Account.objects.count() == 1
    monkeypatch.setattr(account_apis, "account_create", real)
    retry = APIClient()
    retry.credentials(HTTP_AUTHORIZATION=client_key)
    replay = post(retry, CREATING["accounts"], CREATING["accounts"].body())
    assert (replay.status_code, replay.content) == (201, winner.content)


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_a_request_still_running_past_its_lease_keeps_its_key(
    monkeypatch, settings, api_client_with_scopes
):
    settings.IDEMPOTENCY_IN_FLIGHT_SECONDS = 0  # every lease has lapsed at once
    client_key = api_client_with_scopes("accounts:write")._credentials["HTTP_AUTHORIZATION"]
    real = account_apis.account_create
    entered, release = threading.Event(), threading.Event()

    def slow(**kwargs: Any) -> Any:
        entered.set()
        assert release.wait(10)
        return real(**kwargs)

    monkeypatch.setattr(account_apis, "account_create", slow)
    answers: queue.Queue = queue.Queue()

    def send() -> None:
        try:
            client = APIClient()
            client.credentials(HTTP_AUTHORIZATION=client_key)
            answers.put(post(client, CREATING["accounts"], CREATING["accounts"].body()))
        finally:
            connection.close()

    first = threading.Thread(target=send)
    first.start()
    assert entered.wait(10)
    retry = APIClient()
    retry.credentials(HTTP_AUTHORIZATION=client_key)
    during = post(retry, CREATING["accounts"], CREATING["accounts"].body())
    release.set()
    first.join(10)
    finished = answers.get(timeout=1)
    monkeypatch.setattr(account_apis, "account_create", real)
    after = post(retry, CREATING["accounts"], CREATING["accounts"].body())

    assert during.status_code == 409
    assert during.json()["error"]["code"] == "idempotency_key_in_flight"
    assert finished.status_code == 201
    assert (after.status_code, after.content) == (201, finished.content)
    assert Account.objects.count() == 1
