import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.files.base import File
from django.core.files.storage import default_storage
from django.db import IntegrityError, transaction
from django.utils import timezone

from compliance.accounts.models import Profile
from compliance.core.errors import ApplicationError, Conflict
from compliance.retention.services import artefacts_schedule_new

from .media import audio_media_type
from .models import Artefact, Category, Flag, Recording

logger = logging.getLogger(__name__)

AUDIO_EXTENSIONS = {".wav", ".mp3", ".ogg", ".oga", ".opus", ".flac", ".m4a", ".webm", ".aac"}
MAX_TRANSCRIPT_CHARS = 100_000
MAX_FUTURE_SKEW = timedelta(days=1)


@dataclass(frozen=True)
class RecordingInput:
    external_id: str
    profile_external_id: str
    recorded_at: datetime
    transcript: str | None = None
    flags: tuple[str, ...] = ()
    audio: File | None = None


def _invalid(field: str, message: str, code: str = "validation_error") -> ApplicationError:
    return ApplicationError(code, message, fields={field: [message]})


def _validate(data: RecordingInput) -> Profile:
    if not data.external_id or len(data.external_id) > 128:
        raise _invalid("external_id", "Must be 1 to 128 characters.")
    if timezone.is_naive(data.recorded_at):
        raise _invalid("recorded_at", "Needs a time zone (e.g. 2026-01-31T12:00:00Z).")
    if data.recorded_at > timezone.now() + MAX_FUTURE_SKEW:
        raise _invalid("recorded_at", "Lies in the future.")
    unknown = set(data.flags) - set(Flag.values)
    if unknown:
        raise _invalid(
            "flags", f"Unknown flags {sorted(unknown)}; known: {', '.join(Flag.values)}."
        )
    if data.transcript is not None and len(data.transcript) > MAX_TRANSCRIPT_CHARS:
        raise _invalid("transcript", f"At most {MAX_TRANSCRIPT_CHARS} characters.")
    if data.audio is not None:
        if data.audio.size == 0:
            raise _invalid("audio", "The audio file is empty.")
        if data.audio.size > settings.MAX_AUDIO_BYTES:
            raise ApplicationError(
                "payload_too_large",
                f"The audio file exceeds {settings.MAX_AUDIO_BYTES} bytes.",
                fields={"audio": ["too large"]},
                status_code=413,
            )
        audio_media_type(data.audio)  # 415 unless its bytes are audio
    profile = (
        Profile.objects.select_related("account")
        .filter(external_id=data.profile_external_id)
        .first()
    )
    if profile is None:
        raise _invalid(
            "profile", f"No profile {data.profile_external_id!r}.", code="unknown_profile"
        )
    return profile


def _audio_key(name: str | None) -> str:
    """A storage key that says nothing about whose voice it holds."""
    suffix = ""
    if name and "." in name:
        candidate = "." + name.rsplit(".", 1)[1].lower()
        suffix = candidate if candidate in AUDIO_EXTENSIONS else ""
    now = timezone.now()
    return f"audio/{now:%Y/%m}/{uuid.uuid4().hex}{suffix or '.bin'}"


def recording_create(*, data: RecordingInput, actor: str) -> Recording:
    """Store the audio, then the rows; if the rows fail, the file is removed again.

    A crash between the two leaves at worst a file without a row, which the storage
    sweep settles; never a row pointing at a missing file.
    """
    profile = _validate(data)
    if Recording.objects.filter(external_id=data.external_id).exists():
        raise Conflict("duplicate", f"A recording {data.external_id!r} exists already.")

    stored_key = ""
    size = 0
    if data.audio is not None:
        size = data.audio.size or 0
        stored_key = default_storage.save(_audio_key(data.audio.name), data.audio)
    try:
        with transaction.atomic():
            recording = Recording.objects.create(
                external_id=data.external_id,
                profile=profile,
                recorded_at=data.recorded_at,
                sensitive=Flag.SENSITIVE in data.flags,
                false_wake=Flag.FALSE_WAKE in data.flags,
            )
            artefacts = []
            if stored_key:
                artefacts.append(
                    Artefact(
                        recording=recording,
                        category=Category.AUDIO,
                        storage_key=stored_key,
                        size_bytes=size,
                    )
                )
            if data.transcript is not None:
                artefacts.append(
                    Artefact(
                        recording=recording,
                        category=Category.TRANSCRIPT,
                        text=data.transcript,
                        size_bytes=len(data.transcript.encode()),
                    )
                )
            artefacts_schedule_new(
                artefacts=artefacts, profile=profile, recorded_at=data.recorded_at
            )
            Artefact.objects.bulk_create(artefacts)
    except IntegrityError:
        _discard(stored_key)
        raise Conflict("duplicate", f"A recording {data.external_id!r} exists already.") from None
    except BaseException:
        _discard(stored_key)
        raise
    logger.info("recording.ingested id=%s artefacts=%d", recording.pk, len(artefacts))
    return recording


def _discard(key: str) -> None:
    if key:
        default_storage.delete(key)


def parse_flags(value: Any) -> tuple[str, ...]:
    """Flags as a list of names (`["sensitive"]`) or an object of booleans."""
    if value is None:
        return ()
    if isinstance(value, dict):
        if not all(isinstance(v, bool) for v in value.values()):
            raise _invalid("flags", "Flag values must be true or false.")
        unknown = set(value) - set(Flag.values)
        if unknown:
            raise _invalid(
                "flags", f"Unknown flags {sorted(unknown)}; known: {', '.join(Flag.values)}."
            )
        return tuple(k for k, v in value.items() if v)
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise _invalid("flags", 'A list of flag names, e.g. ["sensitive", "false_wake"].')
