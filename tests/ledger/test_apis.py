import base64

import pytest
from rest_framework.test import APIClient

from compliance.ledger import signing
from compliance.ledger.checkpoints import ledger_checkpoint_issue
from compliance.ledger.models import LedgerEntry
from earshot_verify.merkle import verify_consistency, verify_inclusion
from earshot_verify.note import open_checkpoint, parse_verifier_key
from tests.conftest import postgres_only
from tests.ledger.conftest import append

pytestmark = [pytest.mark.django_db, postgres_only()]


def _b64(values: list[str]) -> list[bytes]:
    return [base64.b64decode(v, validate=True) for v in values]


@pytest.fixture
def signed() -> list:
    """Nine entries, a checkpoint at 5 and one at 9."""
    append(5)
    first = ledger_checkpoint_issue()
    append(4)
    return [first, ledger_checkpoint_issue()]


def test_anyone_fetches_the_key_and_checkpoint_and_they_verify(signed):
    anyone = APIClient()

    key = anyone.get("/api/v1/ledger/key")
    checkpoint = anyone.get("/api/v1/ledger/checkpoint")

    assert key["Content-Type"].startswith("text/plain")
    assert checkpoint["Content-Type"].startswith("text/plain")
    opened = open_checkpoint(checkpoint.content.decode(), parse_verifier_key(key.content.decode()))
    assert opened.tree_size == 9


def test_the_key_list_has_every_key_with_its_use(signed):
    keys = APIClient().get("/api/v1/ledger/keys").json()

    assert [(k["use"], k["current"], k["algorithm"]) for k in keys] == [
        ("checkpoint", True, "Ed25519")
    ]
    assert keys[0]["verifier_key"] == signing.signing_key().verifier_key


def test_an_inclusion_proof_reaches_the_checkpoint(signed):
    entry = LedgerEntry.objects.get(seq=4)

    body = APIClient().get("/api/v1/ledger/proof/inclusion?seq=4&tree_size=9").json()

    assert (body["leaf_index"], body["tree_size"]) == (3, 9)
    verify_inclusion(
        leaf_hash=bytes(entry.leaf_hash),
        index=3,
        tree_size=9,
        proof=_b64(body["hashes"]),
        root=bytes(signed[1].root_hash),
    )


def test_a_consistency_proof_links_two_checkpoints(signed):
    body = APIClient().get("/api/v1/ledger/proof/consistency?from=5&to=9").json()

    assert (body["from"], body["to"]) == (5, 9)
    verify_consistency(
        first_size=5,
        second_size=9,
        proof=_b64(body["hashes"]),
        first_root=bytes(signed[0].root_hash),
        second_root=bytes(signed[1].root_hash),
    )


@pytest.mark.parametrize(
    ("query", "code", "field"),
    [
        ("seq=4", "missing_parameter", "tree_size"),
        ("seq=&tree_size=9", "missing_parameter", "seq"),
        ("seq=x&tree_size=9", "invalid_parameter", "seq"),
        ("seq=-1&tree_size=9", "invalid_parameter", "seq"),
        ("seq=\u0661&tree_size=9", "invalid_parameter", "seq"),
        ("seq=4&tree_size=99999999999999999999999", "invalid_parameter", "tree_size"),
        ("seq=4&tree_size=10", "out_of_range", "tree_size"),
        ("seq=0&tree_size=9", "out_of_range", "seq"),
        ("seq=9&tree_size=8", "out_of_range", "seq"),
    ],
)
def test_a_bad_inclusion_query_is_a_400_with_a_code(signed, query, code, field):
    response = APIClient().get(f"/api/v1/ledger/proof/inclusion?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code
    assert field in response.json()["error"]["fields"]


@pytest.mark.parametrize(
    ("query", "code"),
    [("from=5", "missing_parameter"), ("from=6&to=5", "out_of_range"),
     ("from=1&to=10", "out_of_range"), ("from=1.5&to=9", "invalid_parameter")],
)  # fmt: skip
def test_a_bad_consistency_query_is_a_400_with_a_code(signed, query, code):
    response = APIClient().get(f"/api/v1/ledger/proof/consistency?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == code


def test_without_a_checkpoint_the_checkpoint_is_a_404_with_a_code():
    response = APIClient().get("/api/v1/ledger/checkpoint")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "no_checkpoint"


def test_an_entry_comes_with_its_stored_leaf_and_leaf_hash(signed, api_client_with_scopes):
    entry = LedgerEntry.objects.get(seq=2)

    body = api_client_with_scopes("ledger:read").get("/api/v1/ledger/entries/2").json()

    assert base64.b64decode(body["leaf"]) == bytes(entry.leaf)
    assert base64.b64decode(body["leaf_hash"]) == bytes(entry.leaf_hash)
    assert (body["seq"], body["hash"]) == (2, entry.hash)


@pytest.mark.parametrize("seq", ["99", "99999999999999999999999"])
def test_an_unknown_entry_is_a_404(signed, api_client_with_scopes, seq):
    response = api_client_with_scopes("ledger:read").get(f"/api/v1/ledger/entries/{seq}")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_ledger_endpoints_are_in_the_schema():
    paths = APIClient().get("/api/schema/", HTTP_ACCEPT="application/json").json()["paths"]

    for path in ["key", "keys", "checkpoint", "proof/inclusion", "proof/consistency"]:
        assert f"/api/v1/ledger/{path}" in paths
    assert "/api/v1/ledger/entries/{seq}" in paths
