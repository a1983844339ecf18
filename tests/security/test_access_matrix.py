"""The access matrix (docs/invariants.md, invariant 7): every API endpoint x method x caller.

The endpoints come from the URL resolver, so an endpoint (or a method) added without a
row here fails `test_every_api_endpoint_and_method_has_a_row`. For every row, each
kind of caller gets what the row's kind says, and a refusal carries an error and
nothing of the object asked for:

- nobody (no credentials)                          -> 401/403
- a service client without the scope               -> 403
- a service client with the scope                  -> 2xx (client, policy, owned)
- an end user, for someone else's object           -> 404 (owned) / 403 (the rest)
- the owner                                        -> 2xx (owned)
- an officer whose session has no second factor    -> as an end user: 403 / 404
- a verified officer                               -> 2xx (policy, owned)
- another reviewer, for someone else's item        -> 404
- the assigned reviewer                            -> 2xx (review)
"""

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone
from rest_framework.test import APIClient
from rest_framework.views import APIView

from compliance.actions.consent import consent_set
from compliance.clients.scopes import SCOPES
from compliance.clients.services import service_client_create
from compliance.consent.services import consent_default_create
from compliance.edge.permissions import ScopeRequired
from compliance.ledger.checkpoints import ledger_checkpoint_issue
from compliance.retention.deletion_requests import deletion_request_run
from compliance.retention.services import (
    deletion_request_create,
    legal_hold_place,
    retention_policy_create,
)
from compliance.sampling.services import SampleRequest, sample_draw
from compliance.security.services import second_factor_issue
from compliance.transfers.services import transfer_rule_create
from compliance.webhooks.models import Delivery, Subscription
from compliance.webhooks.signing import secret_encrypt, secret_new
from tests.factories import (
    AccountFactory,
    ArtefactFactory,
    ProfileFactory,
    RecordingFactory,
    ReviewerFactory,
)

from .conftest import officer_without_device, person, session_client, verified_client

# --- the matrix -----------------------------------------------------------------------

CLIENT = "client"  # service clients with the scope, nobody else
POLICY = "policy"  # service clients with the scope, or verified officers
OWNED = "owned"  # service clients with the scope, verified officers, or the owner
REVIEW = "review"  # the assigned reviewer's session, or the item's signed link
PUBLIC = "public"  # anyone (the schema and its docs)


@dataclass(frozen=True)
class Rule:
    kind: str
    scope: str | None = None
    path: str = ""  # a format string over the world's ids; the route's own when empty
    body: dict[str, Any] | None = None
    multipart: bool = False


MATRIX: dict[str, dict[str, Rule]] = {
    "api/schema/": {"GET": Rule(PUBLIC)},
    "api/v1/ledger/key": {"GET": Rule(PUBLIC)},
    "api/v1/ledger/keys": {"GET": Rule(PUBLIC)},
    "api/v1/ledger/checkpoint": {"GET": Rule(PUBLIC)},
    "api/v1/ledger/proof/inclusion": {"GET": Rule(PUBLIC, path="{route}?seq=1&tree_size=1")},
    "api/v1/ledger/proof/consistency": {"GET": Rule(PUBLIC, path="{route}?from=1&to=1")},
    "api/v1/ledger/entries/<int:seq>": {
        "GET": Rule(POLICY, "ledger:read", path="api/v1/ledger/entries/1")
    },
    "api/docs/": {"GET": Rule(PUBLIC)},
    "api/v1/accounts": {
        "POST": Rule(CLIENT, "accounts:write", body={"external_id": "a-new", "jurisdiction": "DE"})
    },
    "api/v1/profiles": {
        "POST": Rule(
            CLIENT,
            "accounts:write",
            body={"external_id": "p-new", "account": "{account}", "is_child": False},
        )
    },
    "api/v1/profiles/<str:profile_id>/retention": {
        "GET": Rule(OWNED, "consents:read"),
        "PUT": Rule(OWNED, "consents:write", body={"choice": "3_months"}),
    },
    "api/v1/profiles/<str:profile_id>/consents": {"GET": Rule(OWNED, "consents:read")},
    "api/v1/profiles/<str:profile_id>/consents/<str:purpose>": {
        "GET": Rule(OWNED, "consents:read"),
        "PUT": Rule(OWNED, "consents:write", body={"granted": False, "notice_version": "2030-01"}),
    },
    "api/v1/profiles/<str:profile_id>/consents/<str:purpose>/history": {
        "GET": Rule(OWNED, "consents:read")
    },
    "api/v1/profiles/<str:profile_id>/consents/<str:purpose>/receipt": {
        "GET": Rule(OWNED, "consents:read")
    },
    "api/v1/profiles/<str:profile_id>/evidence": {"GET": Rule(OWNED, "ledger:read")},
    "api/v1/profiles/<str:profile_id>/reviews": {"GET": Rule(OWNED, "ledger:read")},
    "api/v1/profiles/<str:profile_id>/purge-receipts": {"GET": Rule(OWNED, "ledger:read")},
    "api/v1/profiles/<str:profile_id>/deletion-requests": {
        "POST": Rule(OWNED, "deletions:write", body={})
    },
    "api/v1/deletion-requests/<str:request_id>": {"GET": Rule(OWNED, "deletions:write")},
    "api/v1/deletion-requests/<str:request_id>/receipt": {
        "GET": Rule(
            OWNED, "deletions:write", path="api/v1/deletion-requests/{done_request}/receipt"
        )
    },
    "api/v1/recordings": {
        "POST": Rule(
            CLIENT,
            "recordings:write",
            body={
                "external_id": "r-new",
                "profile": "{profile}",
                "recorded_at": "2025-06-01T00:00:00Z",
            },
        )
    },
    "api/v1/recordings/batch": {
        "POST": Rule(
            CLIENT,
            "recordings:write",
            body={
                "recordings": [
                    {
                        "external_id": "r-new-batch",
                        "profile": "{profile}",
                        "recorded_at": "2025-06-01T00:00:00Z",
                    }
                ]
            },
        )
    },
    "api/v1/recordings/<str:recording_id>": {"GET": Rule(OWNED, "recordings:read")},
    "api/v1/eligibility/batch": {
        "POST": Rule(
            CLIENT,
            "eligibility:read",
            body={"purpose": "human_review", "recordings": ["{recording}"]},
        )
    },
    "api/v1/eligibility/<str:recording_id>": {
        "GET": Rule(CLIENT, "eligibility:read", path="{route}?purpose=human_review")
    },
    "api/v1/consent-defaults": {
        "GET": Rule(POLICY, "policies:write"),
        "POST": Rule(
            POLICY,
            "policies:write",
            body={"jurisdiction": "FR", "purpose": "model_training", "granted": True},
        ),
    },
    "api/v1/consent-defaults/<int:pk>": {
        "DELETE": Rule(POLICY, "policies:write", path="api/v1/consent-defaults/{consent_default}")
    },
    "api/v1/transfer-rules": {
        "GET": Rule(POLICY, "policies:write"),
        "POST": Rule(
            POLICY, "policies:write", body={"jurisdiction": "FR", "reviewer_location": "IE"}
        ),
    },
    "api/v1/transfer-rules/<int:pk>": {
        "DELETE": Rule(POLICY, "policies:write", path="api/v1/transfer-rules/{transfer_rule}")
    },
    "api/v1/retention-policies": {
        "GET": Rule(POLICY, "policies:write"),
        "POST": Rule(
            POLICY,
            "policies:write",
            body={"jurisdiction": "FR", "category": "audio", "retention_days": 90},
        ),
    },
    "api/v1/retention-policies/preview": {
        "POST": Rule(
            POLICY,
            "policies:write",
            body={"jurisdiction": "FR", "category": "audio", "retention_days": 90},
        )
    },
    "api/v1/retention-policies/<int:pk>": {
        "DELETE": Rule(POLICY, "policies:write", path="api/v1/retention-policies/{policy}")
    },
    "api/v1/legal-holds": {
        "GET": Rule(POLICY, "holds:write"),
        "POST": Rule(
            POLICY,
            "holds:write",
            body={"profile": "{profile}", "reason": "litigation", "case_reference": "C-2"},
        ),
    },
    "api/v1/legal-holds/<int:pk>": {
        "DELETE": Rule(POLICY, "holds:write", path="api/v1/legal-holds/{hold}")
    },
    "api/v1/reports/retention": {"GET": Rule(POLICY, "reports:read")},
    "api/v1/reports/consent": {"GET": Rule(POLICY, "reports:read")},
    "api/v1/samples": {
        "POST": Rule(
            CLIENT,
            "samples:draw",
            body={"purpose": "model_training", "size": 1, "reviewer_location": "DE"},
        )
    },
    "api/v1/webhooks": {
        "GET": Rule(POLICY, "webhooks:write"),
        "POST": Rule(
            POLICY,
            "webhooks:write",
            body={"url": "https://93.184.216.34/hook", "events": ["consent.changed"]},
        ),
    },
    "api/v1/webhooks/<str:webhook_id>": {
        "GET": Rule(POLICY, "webhooks:write"),
        "PATCH": Rule(POLICY, "webhooks:write", body={"description": "annotation tool"}),
        "DELETE": Rule(POLICY, "webhooks:write"),
    },
    "api/v1/webhooks/<str:webhook_id>/rotate-secret": {"POST": Rule(POLICY, "webhooks:write")},
    "api/v1/webhooks/<str:webhook_id>/test": {"POST": Rule(POLICY, "webhooks:write")},
    "api/v1/webhooks/<str:webhook_id>/replay": {"POST": Rule(POLICY, "webhooks:write")},
    "api/v1/webhooks/<str:webhook_id>/deliveries": {"GET": Rule(POLICY, "webhooks:write")},
    "api/v1/webhooks/<str:webhook_id>/confirmations": {
        "POST": Rule(CLIENT, "webhooks:confirm", body={"event_ids": ["evt_matrix"]})
    },
    "api/v1/review-items/<str:item_id>/audio": {"GET": Rule(REVIEW)},
    "api/v1/review-items/<str:item_id>/annotations": {
        "POST": Rule(REVIEW, body={"text": "a request to turn on the lights"})
    },
}

DENIED = {401, 403}
NOT_FOUND = {404}
OK = {200, 201, 202, 204}

# What each kind of caller gets from each kind of endpoint.
EXPECTED: dict[str, dict[str, set[int]]] = {
    CLIENT: {
        "nobody": DENIED,
        "client without the scope": {403},
        "client with the scope": OK,
        "end user": DENIED,
        "unverified officer": DENIED,
        "officer": DENIED,
    },
    POLICY: {
        "nobody": DENIED,
        "client without the scope": {403},
        "client with the scope": OK,
        "end user": {403},
        "unverified officer": {403},
        "officer": OK,
    },
    OWNED: {
        "nobody": DENIED,
        "client without the scope": {403},
        "client with the scope": OK,
        "end user": NOT_FOUND,
        "owner": OK,
        "unverified officer": NOT_FOUND,
        "officer": OK,
    },
    REVIEW: {
        "nobody": DENIED,
        "client with every scope": DENIED,
        "end user": NOT_FOUND,
        "officer": NOT_FOUND,
        "other reviewer": NOT_FOUND,
        "reviewer": OK,
    },
    PUBLIC: {"nobody": {200}},
}


# --- the endpoints, from the resolver ---------------------------------------------------


def _walk(patterns: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            found += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            found.append((prefix + str(pattern.pattern), pattern.callback))
    return found


def api_endpoints() -> dict[str, set[str]]:
    """Every route under api/ with the methods its view answers (not OPTIONS/HEAD)."""
    endpoints: dict[str, set[str]] = {}
    for route, callback in _walk(get_resolver().url_patterns):
        if not route.startswith("api/"):
            continue
        view = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        assert view is not None, f"{route}: not a class-based view"
        methods = {
            m.upper()
            for m in view.http_method_names
            if m not in {"options", "head"} and hasattr(view, m)
        }
        endpoints[route] = methods
    return endpoints


def test_every_api_endpoint_and_method_has_a_row():
    endpoints = api_endpoints()

    assert {route: set(rules) for route, rules in MATRIX.items()} == endpoints


def test_every_api_view_checks_permissions():
    for route, callback in _walk(get_resolver().url_patterns):
        view = getattr(callback, "cls", None)
        if route.startswith("api/v1/") and view is not None and issubclass(view, APIView):
            kinds = {rule.kind for rule in MATRIX[route].values()}
            if kinds & {CLIENT, POLICY, OWNED}:
                assert any(issubclass(p, ScopeRequired) for p in view.permission_classes), route


# --- the world ------------------------------------------------------------------------


@dataclass
class World:
    ids: dict[str, Any] = field(default_factory=dict)
    callers: dict[str, Callable[[Rule], APIClient]] = field(default_factory=dict)
    secrets: list[str] = field(default_factory=list)  # must never appear in a refusal


def _client_with(scopes: list[str]) -> APIClient:
    _, key = service_client_create(
        name=f"matrix-{len(scopes)}-{'-'.join(scopes)[:60]}", scopes=scopes
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
    return client


def _webhook_with_a_delivery() -> Subscription:
    subscription = Subscription.objects.create(
        external_id="wh_matrix",
        url="https://93.184.216.34/hook",
        events=["*"],
        secret_encrypted=secret_encrypt(secret_new()),
        created_by="t",
    )
    now = timezone.now()
    Delivery.objects.create(
        subscription=subscription,
        event_id="evt_matrix",
        event_type="webhook.ping",
        body="{}",
        next_attempt_at=now,
        retry_from=now,
        created_at=now,
    )
    return subscription


@pytest.fixture
def world(db) -> World:
    alice = person("alice")
    account = AccountFactory(external_id="acct-alice-7f3", jurisdiction="DE", user=alice)
    profile = ProfileFactory(external_id="prof-alice-9c1", account=account)
    consent_set(
        profile=profile,
        purpose="human_review",
        granted=True,
        channel="app",
        notice_version="2029-12",
        actor="test",
    )
    recording = RecordingFactory(
        external_id="rec-alice-41d", profile=profile, recorded_at=datetime(2025, 5, 1, tzinfo=UTC)
    )
    key = default_storage.save("audio/matrix/rec-alice.wav", ContentFile(b"RIFF....WAVEfmt "))
    ArtefactFactory(recording=recording, category="audio", storage_key=key, size_bytes=16)
    ArtefactFactory(recording=recording, category="transcript", text="open the garage door")
    deletion = deletion_request_create(
        profile=profile, recorded_from=datetime(2020, 1, 1, tzinfo=UTC), recorded_to=None, actor="t"
    )
    # done, over a range that holds none of alice's recordings: it has a receipt
    done_request = deletion_request_create(
        profile=profile,
        recorded_from=datetime(2001, 1, 1, tzinfo=UTC),
        recorded_to=datetime(2002, 1, 1, tzinfo=UTC),
        actor="t",
    )
    deletion_request_run(public_id=done_request.public_id)
    mallory = person("mallory")
    consent_set(
        profile=ProfileFactory(external_id="prof-mallory", account__user=mallory),
        purpose="human_review",
        granted=True,
        channel="app",
        notice_version="mallory-notice",
        actor="test",
    )

    rita = ReviewerFactory(user=person("rita"), location="DE")
    ron = ReviewerFactory(user=person("ron"), location="DE")
    for name in ("rita", "ron"):
        second_factor_issue(username=name, create=False, officer=False)
    draw = sample_draw(
        request=SampleRequest(purpose="human_review", size=1, reviewer="rita"), actor="test"
    )
    assert len(draw.items) == 1, "the world's recording must be reviewable"
    item_id = draw.items[0].id

    ledger_checkpoint_issue()  # what the public ledger endpoints prove against

    officer = person("olivia")
    second_factor_issue(username="olivia", create=False, officer=True)
    oscar = officer_without_device("oscar")

    ids = {
        "account": account.external_id,
        "profile": profile.external_id,
        "profile_id": profile.external_id,
        "purpose": "human_review",
        "recording": recording.external_id,
        "recording_id": recording.external_id,
        "request_id": deletion.public_id,
        "done_request": done_request.public_id,
        "item_id": item_id,
        "consent_default": consent_default_create(
            jurisdiction="DE", purpose="model_training", granted=False, actor="t"
        ).pk,
        "transfer_rule": transfer_rule_create(
            jurisdiction="AT", reviewer_location="DE", actor="t"
        ).pk,
        "policy": retention_policy_create(
            jurisdiction="DE", category="audio", retention_days=365, applies_to="all", actor="t"
        ).pk,
        "hold": legal_hold_place(
            account=account, reason="litigation", case_reference="C-1", actor="t"
        ).pk,
        "webhook_id": _webhook_with_a_delivery().external_id,
    }
    return World(
        ids=ids,
        callers={
            "nobody": lambda rule: APIClient(),
            "client without the scope": lambda rule: _client_with(
                sorted(set(SCOPES) - {rule.scope})
            ),
            "client with the scope": lambda rule: _client_with([rule.scope]),
            "client with every scope": lambda rule: _client_with(sorted(SCOPES)),
            "end user": lambda rule: session_client(mallory),
            "owner": lambda rule: session_client(alice),
            "unverified officer": lambda rule: session_client(oscar),
            "officer": lambda rule: verified_client(officer),
            "other reviewer": lambda rule: verified_client(ron.user),
            "reviewer": lambda rule: verified_client(rita.user),
        },
        secrets=[
            account.external_id,
            profile.external_id,
            recording.external_id,
            deletion.public_id,
            item_id,
            "open the garage door",
            "litigation",
        ],
    )


def _concrete(route: str, rule: Rule, ids: dict[str, Any]) -> str:
    path = rule.path.replace("{route}", route) if rule.path else route
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m: "{" + m.group(1) + "}", path)
    return "/" + path.format(**ids)


def _filled(value: Any, ids: dict[str, Any]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, list):
        return [_filled(v, ids) for v in value]
    if isinstance(value, dict):
        return {k: _filled(v, ids) for k, v in value.items()}
    return value


def _call(client: APIClient, method: str, path: str, rule: Rule, ids: dict[str, Any]) -> Any:
    body = _filled(rule.body, ids) if rule.body is not None else None
    return getattr(client, method.lower())(path, body, format="json")


def _cases() -> list[Any]:
    cases = []
    for route, rules in MATRIX.items():
        for method, rule in rules.items():
            for caller in EXPECTED[rule.kind]:
                cases.append(pytest.param(route, method, caller, id=f"{method} {route} {caller}"))
    return cases


@pytest.mark.parametrize(("route", "method", "caller"), _cases())
def test_the_access_matrix(world, route, method, caller):
    rule = MATRIX[route][method]
    client = world.callers[caller](rule)
    path = _concrete(route, rule, world.ids)

    response = _call(client, method, path, rule, world.ids)

    expected = EXPECTED[rule.kind][caller]
    assert response.status_code in expected, (
        f"{method} {path} as {caller}: {response.status_code} {response.content[:300]!r}"
    )
    if response.status_code >= 400:
        assert response["Content-Type"].startswith("application/json")
        assert set(response.json()) == {"error"}
        content = response.content.decode()
        for secret in world.secrets:
            assert secret not in content, f"{caller} learnt {secret!r} from {method} {path}"


@pytest.mark.parametrize("method", ["OPTIONS", "HEAD"])
def test_nobody_learns_anything_from_options_or_head(world, method):
    for route, rules in MATRIX.items():
        rule = next(iter(rules.values()))
        if rule.kind == PUBLIC:
            continue
        path = _concrete(route, rule, world.ids)
        response = APIClient().generic(method, path)
        if response.status_code == 200:
            # DRF's metadata for a view that checks its caller per object (review
            # items): what the view is, nothing of the object, which it never loads
            assert method == "OPTIONS" and rule.kind == REVIEW, path
            assert set(response.json()) == {"name", "description", "renders", "parses"}
        else:
            assert response.status_code in DENIED | {405}, (
                f"{method} {path}: {response.status_code}"
            )
        for secret in world.secrets:
            assert secret.encode() not in response.content


# --- lists never include others' rows ---------------------------------------------------


def test_an_owners_consent_list_and_history_hold_only_their_own_profile(world):
    owner = world.callers["owner"](Rule(OWNED))
    profile = world.ids["profile"]

    listed = owner.get(f"/api/v1/profiles/{profile}/consents").json()
    history = owner.get(f"/api/v1/profiles/{profile}/consents/human_review/history").json()

    assert listed["profile"] == profile
    assert {c["purpose"] for c in listed["consents"]} == {"human_review", "model_training"}
    assert [e["notice_version"] for e in history["events"]] == ["2029-12"]
    assert "prof-mallory" not in json.dumps(listed) + json.dumps(history)
    assert "mallory-notice" not in json.dumps(history)


def test_an_end_user_cannot_reach_another_profile_through_any_spelling_of_its_id(world):
    mallory = world.callers["end user"](Rule(OWNED))
    profile = world.ids["profile"]
    for candidate in (profile.upper(), f" {profile}", f"{profile}%20", profile + "/"):
        response = mallory.get(f"/api/v1/profiles/{candidate}/consents")
        assert response.status_code == 404
        assert profile not in response.content.decode()
