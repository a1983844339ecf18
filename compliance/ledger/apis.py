"""The ledger's public face: the verifier key, every published key, the latest signed
checkpoint and RFC 9162 proofs (anyone: they reveal sizes and hashes only), and the
entries themselves (`ledger:read`, or an officer)."""

import base64
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.core.errors import ApplicationError, NotFound, field_error
from compliance.edge.permissions import scope_or_officer
from earshot_verify.note import verifier_key

from . import tree
from .models import LedgerCheckpoint, LedgerEntry, LedgerKey
from .signing import signing_key

# A bigint column's largest value: anything above is no entry and no size, and never
# reaches the database (where it would overflow).
_MAX_INT = 2**63 - 1


def _b64(raw: bytes | memoryview) -> str:
    return base64.b64encode(bytes(raw)).decode()


def _int_param(request: Request, name: str) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        raise ApplicationError(
            "missing_parameter",
            f"{name} is required.",
            fields=field_error(name, "required", "This parameter is required."),
        )
    if not (raw.isascii() and raw.isdigit()) or int(raw) > _MAX_INT:
        raise ApplicationError(
            "invalid_parameter",
            f"{name} must be a non-negative integer.",
            fields=field_error(name, "invalid", "Must be a non-negative integer."),
        )
    return int(raw)


def _out_of_range(message: str, name: str) -> ApplicationError:
    return ApplicationError(
        "out_of_range", message, fields=field_error(name, "out_of_range", message)
    )


def _text(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/plain; charset=utf-8")


class _Public(APIView):
    """No credentials and no throttle: what these return is public by design and cheap."""

    authentication_classes: list[Any] = []
    permission_classes = [AllowAny]
    throttle_classes: list[Any] = []


class LedgerKeyApi(_Public):
    @extend_schema(
        responses={(200, "text/plain"): OpenApiTypes.STR},
        operation_id="ledger_key",
        description="The current checkpoint verifier key (signed-note format).",
    )
    def get(self, request: Request) -> HttpResponse:
        return _text(signing_key().verifier_key + "\n")


class LedgerKeyOutput(serializers.Serializer):
    verifier_key = serializers.CharField()
    name = serializers.CharField()
    key_hash = serializers.CharField()
    public_key = serializers.CharField(help_text="base64 of the 32-byte Ed25519 key")
    algorithm = serializers.CharField()
    use = serializers.CharField()
    current = serializers.BooleanField()
    created_at = serializers.DateTimeField(allow_null=True, help_text="null: not used yet")
    retired_at = serializers.DateTimeField(allow_null=True)


class LedgerKeysApi(_Public):
    @extend_schema(responses={200: LedgerKeyOutput(many=True)}, operation_id="ledger_keys")
    def get(self, request: Request) -> Response:
        current = signing_key()
        rows = list(LedgerKey.objects.order_by("created_at", "id"))
        if not any(bytes(r.public_key) == current.public_key for r in rows):
            rows.append(
                LedgerKey(
                    name=current.name,
                    use=LedgerKey.Use.CHECKPOINT,
                    public_key=current.public_key,
                    key_hash=f"{current.key_hash:08x}",
                    created_at=None,  # type: ignore[misc]  # not stored yet: no time
                )
            )
        keys = [
            {
                "verifier_key": verifier_key(row.name, bytes(row.public_key)),
                "name": row.name,
                "key_hash": row.key_hash,
                "public_key": _b64(row.public_key),
                "algorithm": "Ed25519",
                "use": row.use,
                "current": row.retired_at is None,
                "created_at": row.created_at,
                "retired_at": row.retired_at,
            }
            for row in rows
        ]
        return Response(LedgerKeyOutput(keys, many=True).data)


class LedgerCheckpointApi(_Public):
    @extend_schema(
        responses={
            (200, "text/plain"): OpenApiTypes.STR,
            404: OpenApiResponse(description="no checkpoint signed yet"),
        },
        operation_id="ledger_checkpoint",
        description="The latest signed checkpoint (C2SP tlog-checkpoint in a signed note).",
    )
    def get(self, request: Request) -> HttpResponse:
        latest = LedgerCheckpoint.objects.order_by("-tree_size").first()
        if latest is None:
            raise NotFound("no_checkpoint", "No checkpoint has been signed yet.")
        return _text(latest.note)


class InclusionProofOutput(serializers.Serializer):
    leaf_index = serializers.IntegerField()
    tree_size = serializers.IntegerField()
    hashes = serializers.ListField(child=serializers.CharField())


class LedgerInclusionProofApi(_Public):
    @extend_schema(
        parameters=[
            OpenApiParameter("seq", int, required=True, description="the entry (leaf seq-1)"),
            OpenApiParameter("tree_size", int, required=True),
        ],
        responses={200: InclusionProofOutput},
        operation_id="ledger_proof_inclusion",
    )
    def get(self, request: Request) -> Response:
        seq = _int_param(request, "seq")
        size = _int_param(request, "tree_size")
        if size > tree.tree_size():
            raise _out_of_range("tree_size is larger than the signed tree.", "tree_size")
        if not 1 <= seq <= size:
            raise _out_of_range("seq is not within the tree of tree_size entries.", "seq")
        hashes = tree.tree_inclusion_proof(index=seq - 1, size=size)
        return Response(
            {"leaf_index": seq - 1, "tree_size": size, "hashes": [_b64(h) for h in hashes]}
        )


class ConsistencyProofOutput(serializers.Serializer):
    hashes = serializers.ListField(child=serializers.CharField())

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        fields["from"] = serializers.IntegerField()
        fields["to"] = serializers.IntegerField()
        return fields


class LedgerConsistencyProofApi(_Public):
    @extend_schema(
        parameters=[
            OpenApiParameter("from", int, required=True),
            OpenApiParameter("to", int, required=True),
        ],
        responses={200: ConsistencyProofOutput},
        operation_id="ledger_proof_consistency",
    )
    def get(self, request: Request) -> Response:
        first = _int_param(request, "from")
        second = _int_param(request, "to")
        if second > tree.tree_size():
            raise _out_of_range("to is larger than the signed tree.", "to")
        if first > second:
            raise _out_of_range("from is larger than to.", "from")
        hashes = tree.tree_consistency_proof(first=first, second=second)
        return Response({"from": first, "to": second, "hashes": [_b64(h) for h in hashes]})


class LedgerEntryOutput(serializers.Serializer):
    seq = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    kind = serializers.CharField()
    subject = serializers.CharField()
    actor = serializers.CharField()
    payload = serializers.JSONField()
    prev_hash = serializers.CharField()
    hash = serializers.CharField()
    leaf = serializers.CharField(help_text="base64 of the stored canonical bytes")
    leaf_hash = serializers.CharField(help_text="base64 of SHA-256(0x00 || leaf)")


class LedgerEntryApi(APIView):
    permission_classes = [scope_or_officer({"GET": "ledger:read"})]

    @extend_schema(responses={200: LedgerEntryOutput}, operation_id="ledger_entry")
    def get(self, request: Request, seq: int) -> Response:
        entry = LedgerEntry.objects.filter(seq=seq).first() if seq <= _MAX_INT else None
        if entry is None:
            raise NotFound("Ledger entry")
        return Response(
            LedgerEntryOutput(
                {
                    "seq": entry.seq,
                    "created_at": entry.created_at,
                    "kind": entry.kind,
                    "subject": entry.subject,
                    "actor": entry.actor,
                    "payload": entry.payload,
                    "prev_hash": entry.prev_hash,
                    "hash": entry.hash,
                    "leaf": _b64(entry.leaf),
                    "leaf_hash": _b64(entry.leaf_hash),
                }
            ).data
        )
