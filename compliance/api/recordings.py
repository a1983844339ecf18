import json
from datetime import UTC
from typing import Any, cast

from django.http import QueryDict
from django.utils.dateparse import parse_datetime
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.actions.ingest import recording_create, recordings_register
from compliance.api.lean import LeanJsonPost
from compliance.core.errors import ApplicationError, field_error
from compliance.core.fields import (
    OUT_OF_RANGE_MESSAGE,
    AwareDateTimeField,
    ExternalIdField,
    StrictCharField,
    is_url_segment,
    year_in_range,
)
from compliance.core.idempotency import idempotent
from compliance.edge import parsing
from compliance.edge.callers import actor_of
from compliance.edge.parsing import StrictInput, unknown_fields
from compliance.edge.permissions import ScopeRequired, find_for_caller, scope_or_officer
from compliance.recordings.models import Category, Flag, Recording, RecordingState
from compliance.recordings.selectors import recording_for_caller
from compliance.recordings.services import MAX_BATCH, IngestResult, RecordingInput


class ArtefactOutput(serializers.Serializer):
    category = serializers.CharField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class RecordingOutput(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    external_id = serializers.CharField()
    profile = serializers.SerializerMethodField(help_text="null once purged")
    recorded_at = serializers.DateTimeField(allow_null=True, help_text="null once purged")
    state = serializers.CharField()
    flags = serializers.ListField(child=serializers.CharField())
    transcript = serializers.SerializerMethodField()
    artefacts = ArtefactOutput(many=True)
    created_at = serializers.DateTimeField()
    purged_at = serializers.DateTimeField(allow_null=True)
    purge_reason = serializers.CharField(allow_null=True)
    purge_policy = serializers.CharField(
        allow_null=True, help_text="when purged: the policy or choice that applied"
    )

    def get_profile(self, recording: Recording) -> str | None:
        return recording.profile.external_id if recording.profile else None

    def get_transcript(self, recording: Recording) -> str | None:
        for artefact in recording.artefacts.all():
            if artefact.category == Category.TRANSCRIPT:
                return artefact.text
        return None

    def to_representation(self, recording: Recording) -> dict:
        data = super().to_representation(recording)
        if recording.state != RecordingState.PURGED:
            data["purge_reason"] = data["purge_policy"] = None
            return data
        # A tombstone: its id, the purge's time, reason and policy, and nothing about the
        # person or what they said (docs/domain.md, "Tombstone"); the fields of a live
        # recording stay, empty, so a client reads one shape.
        data.update(profile=None, recorded_at=None, flags=[], transcript=None, artefacts=[])
        data["purge_reason"] = data["purge_reason"] or None
        data["purge_policy"] = data["purge_policy"] or None
        return data


_TIME = serializers.DateTimeField()


def _created(recording: Recording) -> dict:
    """RecordingOutput of a recording just written, from what was written (no read
    back): the serializer's machinery cost the single POST more than the rendering."""
    transcript = None
    artefacts = []
    profile = recording.profile
    assert profile is not None  # the ingest writes every recording with its profile
    for artefact in recording.written_artefacts:
        if artefact.category == Category.TRANSCRIPT:
            transcript = artefact.text
        artefacts.append(
            {
                "category": artefact.category,
                "size_bytes": artefact.size_bytes,
                "created_at": _TIME.to_representation(artefact.created_at),
            }
        )
    return {
        "id": recording.external_id,
        "external_id": recording.external_id,
        "profile": profile.external_id,
        "recorded_at": _TIME.to_representation(recording.recorded_at),
        "state": recording.state,
        "flags": recording.flags,
        "transcript": transcript,
        "artefacts": artefacts,
        "created_at": _TIME.to_representation(recording.created_at),
        "purged_at": None,
        "purge_reason": None,
        "purge_policy": None,
    }


def _form_payload(form: QueryDict) -> dict:
    """A multipart form as the JSON body would be; flags as repeated fields, CSV or JSON."""
    payload: dict[str, Any] = {key: form.get(key) for key in form if key != "flags"}
    flags = form.getlist("flags")
    if len(flags) == 1 and flags[0].lstrip().startswith(("[", "{")):
        try:
            payload["flags"] = json.loads(flags[0])
        except (ValueError, RecursionError):  # json raises RecursionError when nested deeply
            raise ApplicationError(
                "validation_error",
                "flags is not valid JSON.",
                fields=field_error("flags", "invalid", "Must be valid JSON."),
            ) from None
    elif flags:
        payload["flags"] = [f.strip() for value in flags for f in value.split(",") if f.strip()]
    return payload


class RecordingCreateApi(LeanJsonPost):
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "recordings:write"}

    class RecordingCreateInput(StrictInput):
        external_id = ExternalIdField()
        profile = StrictCharField(max_length=128)
        recorded_at = AwareDateTimeField()
        transcript = StrictCharField(required=False, allow_blank=True, trim_whitespace=False)
        flags = serializers.JSONField(required=False)
        audio = serializers.FileField(required=False, allow_empty_file=True)

    @extend_schema(
        request={
            "application/json": RecordingCreateInput,
            "multipart/form-data": RecordingCreateInput,
            # a form without the audio file, as the other operations take one
            "application/x-www-form-urlencoded": RecordingCreateInput,
        },
        responses={201: RecordingOutput},
        operation_id="recordings_create",
    )
    @idempotent
    def post(self, request: Request) -> Response:
        if hasattr(request.data, "getlist"):
            payload = _form_payload(cast(QueryDict, request.data))
            answer = _create(_CREATE_INPUT.run_validation(payload), request.user)
        elif isinstance(request.data, dict):
            answer = self.lean_post(request.data, request.user)
        else:
            data = self.RecordingCreateInput(data=request.data)
            data.is_valid(raise_exception=True)
            answer = _create(data.validated_data, request.user)
        return Response(answer, status=status.HTTP_201_CREATED)

    def lean_post(self, payload: dict[str, Any], user: Any) -> dict[str, Any]:
        """The answer to a JSON object, as `post` and the lean way (LeanJsonPost) give
        it."""
        if "audio" in payload:
            raise ApplicationError(
                "validation_error",
                "Send audio as a multipart/form-data file field named audio.",
                fields=field_error("audio", "not_a_file", "Must be a file upload."),
            )
        # the same validation as is_valid(), without a new serializer (and a deep copy
        # of its fields) per request: run_validation keeps no state
        return _create(_CREATE_INPUT.run_validation(payload), user)


def _create(values: Any, user: Any) -> dict[str, Any]:
    recording = recording_create(
        data=RecordingInput(
            external_id=values["external_id"],
            profile_external_id=values["profile"],
            recorded_at=values["recorded_at"],
            transcript=values.get("transcript"),
            flags=parsing.flags(values.get("flags"), Flag),
            audio=values.get("audio"),
        ),
        actor=actor_of(user),
    )
    return _created(recording)


_CREATE_INPUT = RecordingCreateApi.RecordingCreateInput()


class RecordingDetailApi(APIView):
    permission_classes = [scope_or_officer({"GET": "recordings:read"}, owner=True)]

    @extend_schema(responses={200: RecordingOutput}, operation_id="recordings_read")
    def get(self, request: Request, recording_id: str) -> Response:
        recording = find_for_caller(request, self, recording_for_caller, external_id=recording_id)
        return Response(RecordingOutput(recording).data)


# --- the batch ------------------------------------------------------------------------


class RecordingBatchItemInput(StrictInput):
    external_id = serializers.CharField(max_length=128)
    profile = serializers.CharField(max_length=128)
    recorded_at = serializers.DateTimeField(help_text="ISO 8601 with a time zone.")
    transcript = serializers.CharField(required=False, allow_blank=True)
    flags = serializers.JSONField(
        required=False, help_text='["sensitive", "false_wake"] or {"sensitive": true, ...}'
    )
    audio_key = serializers.CharField(
        required=False,
        max_length=255,
        help_text="An object already in storage, under INGEST_AUDIO_PREFIX (default ingest/).",
    )
    audio_size = serializers.IntegerField(required=False, min_value=0)
    audio_sha256 = serializers.CharField(required=False, min_length=64, max_length=64)


class RecordingBatchInput(StrictInput):
    recordings = serializers.ListField(child=RecordingBatchItemInput(), max_length=MAX_BATCH)


class RecordingBatchItemError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class RecordingBatchResult(serializers.Serializer):
    external_id = serializers.CharField()
    status = serializers.ChoiceField(choices=["created", "exists", "error"])
    error = RecordingBatchItemError(required=False)


class RecordingBatchOutput(serializers.Serializer):
    results = RecordingBatchResult(many=True)


_ITEM_FIELDS = frozenset(RecordingBatchItemInput().fields)


def _text(raw: dict, name: str, *, required: bool = True) -> str | None:
    value = raw.get(name)
    if value is None and not required:  # absent or null
        return None
    if not isinstance(value, str) or "\x00" in value:
        raise ApplicationError("validation_error", f"{name} must be a string.")
    return value


_NOT_A_SEGMENT = ExternalIdField.default_error_messages["not_a_segment"]


def _name(raw: dict, name: str, *, segment: bool = False) -> str:
    """An id as the single POST reads one: surrounding blanks trimmed, never blank, and
    for the recording's own (`segment`) one URL segment, as its ExternalIdField wants,
    so that both paths register the same ids and each can be asked for by `{id}`."""
    value = (_text(raw, name) or "").strip()
    if not value:
        raise ApplicationError("validation_error", f"{name} may not be blank.")
    if segment and not is_url_segment(value):
        raise ApplicationError("validation_error", f"{name}: {_NOT_A_SEGMENT}")
    return value


def _batch_item(raw: object) -> RecordingInput | IngestResult:
    """One item of the batch, parsed as strictly as the single POST parses its body;
    a refusal is that item's result, not the request's."""
    external_id = raw.get("external_id") if isinstance(raw, dict) else None
    label = external_id if isinstance(external_id, str) else ""
    try:
        if not isinstance(raw, dict):
            raise ApplicationError("validation_error", "Each item must be an object.")
        unknown = set(raw) - _ITEM_FIELDS
        if unknown:
            raise ApplicationError("validation_error", f"Unknown fields {sorted(unknown)}.")
        recorded_at_raw = raw.get("recorded_at")
        recorded_at = parse_datetime(recorded_at_raw) if isinstance(recorded_at_raw, str) else None
        if recorded_at is None or recorded_at.tzinfo is None:
            raise ApplicationError(
                "validation_error",
                "recorded_at must be an ISO 8601 date-time with a time zone.",
            )
        if not year_in_range(recorded_at.astimezone(UTC)):  # OverflowError: no UTC time
            raise ApplicationError("validation_error", f"recorded_at: {OUT_OF_RANGE_MESSAGE}")
        audio_size = raw.get("audio_size")
        if audio_size is not None and (
            not isinstance(audio_size, int) or isinstance(audio_size, bool)
        ):
            raise ApplicationError("validation_error", "audio_size must be a whole number.")
        data = RecordingInput(
            external_id=_name(raw, "external_id", segment=True),
            profile_external_id=_name(raw, "profile"),
            recorded_at=recorded_at,
            transcript=_text(raw, "transcript", required=False),
            flags=parsing.flags(raw.get("flags"), Flag),
            audio_key=_text(raw, "audio_key", required=False),
            audio_size=audio_size,
            audio_sha256=_text(raw, "audio_sha256", required=False),
        )
    except (ApplicationError, ValueError, OverflowError) as refused:
        if isinstance(refused, ApplicationError):
            return IngestResult(label, "error", refused.code, refused.message)
        return IngestResult(label, "error", "validation_error", "recorded_at is not a valid time.")
    return data


class RecordingBatchApi(APIView):
    """Registers up to 1,000 recordings whose audio the platform has put in storage
    itself; each item succeeds or fails on its own."""

    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "recordings:write"}

    @extend_schema(
        request=RecordingBatchInput,
        responses={200: RecordingBatchOutput},
        operation_id="recordings_register",
        description=(
            "Item errors (`error.code`): validation_error, unknown_profile, conflict (the "
            "external id names a different recording), purged (a tombstone is never "
            "resurrected), audio_key_invalid (outside INGEST_AUDIO_PREFIX, `..`, absolute), "
            "audio_missing, audio_mismatch (size or SHA-256), audio_key_in_use. "
            "A resend of an ingested item answers `exists` and changes nothing."
        ),
    )
    def post(self, request: Request) -> Response:
        body = request.data
        items = body.get("recordings") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(items, list):
            raise ApplicationError(
                "validation_error",
                "The body must be an object with a list `recordings`.",
                fields=field_error("recordings", "not_a_list", "Must be a list of recordings."),
            )
        unknown_fields(body, ("recordings",))
        if len(items) > MAX_BATCH:
            raise ApplicationError(
                "batch_too_large",
                f"At most {MAX_BATCH} recordings per batch; got {len(items)}.",
                fields=field_error("recordings", "max_length", f"At most {MAX_BATCH} recordings."),
            )
        results = recordings_register(
            items=[_batch_item(raw) for raw in items], actor=actor_of(request.user)
        )
        return Response(
            {
                "results": [
                    {"external_id": r.external_id, "status": r.status}
                    if r.status != "error"
                    else {
                        "external_id": r.external_id,
                        "status": r.status,
                        "error": {"code": r.code, "message": r.message},
                    }
                    for r in results
                ]
            }
        )
