import json

from django.http import QueryDict
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from compliance.clients.permissions import ScopeRequired, actor_of
from compliance.core.errors import ApplicationError
from compliance.core.fields import AwareDateTimeField, ExternalIdField, StrictCharField

from .models import Category, Recording
from .selectors import recording_for_caller
from .services import RecordingInput, parse_flags, recording_create


class ArtefactOutput(serializers.Serializer):
    category = serializers.CharField()
    size_bytes = serializers.IntegerField()
    created_at = serializers.DateTimeField()


class RecordingOutput(serializers.Serializer):
    id = serializers.CharField(source="external_id")
    external_id = serializers.CharField()
    profile = serializers.SerializerMethodField()
    recorded_at = serializers.DateTimeField()
    state = serializers.CharField()
    flags = serializers.ListField(child=serializers.CharField())
    transcript = serializers.SerializerMethodField()
    artefacts = ArtefactOutput(many=True)
    created_at = serializers.DateTimeField()
    purged_at = serializers.DateTimeField(allow_null=True)
    purge_reason = serializers.CharField(allow_null=True)

    def get_profile(self, recording: Recording) -> str | None:
        return recording.profile.external_id if recording.profile else None

    def get_transcript(self, recording: Recording) -> str | None:
        for artefact in recording.artefacts.all():
            if artefact.category == Category.TRANSCRIPT:
                return artefact.text
        return None

    def to_representation(self, recording: Recording) -> dict:
        data = super().to_representation(recording)
        if recording.state != "purged":
            data["purge_reason"] = None
        return data


def _form_payload(form: QueryDict) -> dict:
    """A multipart form as the JSON body would be; flags as repeated fields, CSV or JSON."""
    payload = {key: form.get(key) for key in form if key != "flags"}
    flags = form.getlist("flags")
    if len(flags) == 1 and flags[0].lstrip().startswith(("[", "{")):
        try:
            payload["flags"] = json.loads(flags[0])
        except (ValueError, RecursionError):  # json raises RecursionError when nested deeply
            raise ApplicationError(
                "validation_error", "flags is not valid JSON.", fields={"flags": ["invalid"]}
            ) from None
    elif flags:
        payload["flags"] = [f.strip() for value in flags for f in value.split(",") if f.strip()]
    return payload


class RecordingCreateApi(APIView):
    permission_classes = [ScopeRequired]
    required_scopes = {"POST": "recordings:write"}

    class RecordingCreateInput(serializers.Serializer):
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
        },
        responses={201: RecordingOutput},
        operation_id="recordings_create",
    )
    def post(self, request: Request) -> Response:
        if hasattr(request.data, "getlist"):
            payload = _form_payload(request.data)
        elif isinstance(request.data, dict) and "audio" in request.data:
            raise ApplicationError(
                "validation_error",
                "Send audio as a multipart/form-data file field named audio.",
                fields={"audio": ["must be a file upload"]},
            )
        else:
            payload = request.data
        data = self.RecordingCreateInput(data=payload)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        recording = recording_create(
            data=RecordingInput(
                external_id=values["external_id"],
                profile_external_id=values["profile"],
                recorded_at=values["recorded_at"],
                transcript=values.get("transcript"),
                flags=parse_flags(values.get("flags")),
                audio=values.get("audio"),
            ),
            actor=actor_of(request.user),
        )
        recording = recording_for_caller(
            caller=request.user, external_id=recording.external_id, scope="recordings:write"
        )
        return Response(RecordingOutput(recording).data, status=status.HTTP_201_CREATED)


class RecordingDetailApi(APIView):
    permission_classes = [ScopeRequired]
    required_scopes = {"GET": "recordings:read"}
    owner_allowed = True
    officer_allowed = True

    @extend_schema(responses={200: RecordingOutput}, operation_id="recordings_read")
    def get(self, request: Request, recording_id: str) -> Response:
        recording = recording_for_caller(
            caller=request.user, external_id=recording_id, scope="recordings:read"
        )
        return Response(RecordingOutput(recording).data)
