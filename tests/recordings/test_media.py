"""An upload's audio type is read from its bytes: the formats a voice platform records
into are accepted, anything else is a 415 and nothing is stored."""

import json
import struct
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile

from compliance.core.errors import ApplicationError
from compliance.recordings.media import audio_media_type, media_type_of
from compliance.recordings.models import Artefact, Recording
from tests.conftest import VOICE_DIR
from tests.factories import ProfileFactory


def _ogg(packet: bytes) -> bytes:
    # capture pattern, version, header type, granule, serial, sequence, crc, 1 segment
    return b"OggS" + bytes(22) + b"\x01" + bytes([len(packet)]) + packet


def _ebml(doctype: bytes) -> bytes:
    return b"\x1a\x45\xdf\xa3\xa3\x42\x86\x81\x01\x42\x82" + bytes([0x80 | len(doctype)]) + doctype


SAMPLES = {
    "wav": (b"RIFF\x24\x08\x00\x00WAVEfmt \x10\x00\x00\x00", "audio/wav"),
    "rf64": (b"RF64\xff\xff\xff\xffWAVEds64", "audio/wav"),
    "flac": (b"fLaC\x00\x00\x00\x22\x10\x00\x10\x00", "audio/flac"),
    "opus": (_ogg(b"OpusHead\x01\x01\x38\x01\x80\xbb\x00\x00"), "audio/ogg"),
    "vorbis": (_ogg(b"\x01vorbis\x00\x00\x00\x00\x01\x44\xac"), "audio/ogg"),
    "mp3-id3": (b"ID3\x04\x00\x00\x00\x00\x00\x23TSSE", "audio/mpeg"),
    "mp3-frame": (b"\xff\xfb\x90\x64\x00\x00\x00\x00", "audio/mpeg"),
    "mp2-frame": (b"\xff\xf5\x80\x04\x00\x00", "audio/mpeg"),
    "aac-adts": (b"\xff\xf1\x50\x80\x02\x1f\xfc", "audio/aac"),
    "m4a": (struct.pack(">I", 32) + b"ftypM4A \x00\x00\x02\x00M4A mp42isom", "audio/mp4"),
    "mp4-isom": (struct.pack(">I", 24) + b"ftypisom\x00\x00\x02\x00isomiso2", "audio/mp4"),
    "webm": (_ebml(b"webm"), "audio/webm"),
    "matroska": (_ebml(b"matroska"), "audio/webm"),
}

HOSTILE = {
    "html": b"<!DOCTYPE html><html><script>alert(1)</script></html>",
    "elf": b"\x7fELF\x02\x01\x01\x00" + bytes(56),
    "php": b"<?php system($_GET['c']); ?>",
    "pdf": b"%PDF-1.7\n%\xe2\xe3\xcf\xd3",
    "zip": b"PK\x03\x04\x14\x00\x00\x00",
    "png": b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    "heic": struct.pack(">I", 24) + b"ftypheic\x00\x00\x00\x00mif1heic",
    "quicktime": struct.pack(">I", 20) + b"ftypqt  \x00\x00\x02\x00qt  ",
    "ogg-theora": _ogg(b"\x80theora\x03\x02\x01"),
    "riff-avi": b"RIFF\x24\x08\x00\x00AVI LIST",
    "ebml-other": _ebml(b"other"),
    "bad-frame": b"\xff\xff\xff\xff\xff\xff",
    "empty": b"",
    "text": b"turn on the lights",
    "id3-short": b"ID3",
}


@pytest.mark.parametrize(("head", "media_type"), SAMPLES.values(), ids=SAMPLES.keys())
def test_each_recording_format_is_known_by_its_bytes(head, media_type):
    assert media_type_of(head) == media_type


@pytest.mark.parametrize("head", HOSTILE.values(), ids=HOSTILE.keys())
def test_anything_else_is_not_audio(head):
    assert media_type_of(head) is None


@pytest.mark.parametrize("clip", sorted(VOICE_DIR.glob("*.wav")), ids=lambda p: p.name)
def test_every_demo_clip_is_accepted(clip: Path):
    with clip.open("rb") as file:
        assert audio_media_type(file) == "audio/wav"
        assert file.tell() == 0


def test_refusal_is_a_415_with_its_code():
    with pytest.raises(ApplicationError) as refused:
        audio_media_type(ContentFile(HOSTILE["html"], name="clip.wav"))

    assert (refused.value.code, refused.value.status_code) == ("unsupported_media_type", 415)
    assert "audio" in refused.value.fields


def _stored_files(media_root: str) -> list[Path]:
    return [p for p in Path(media_root).rglob("*") if p.is_file()]


@pytest.mark.django_db
@pytest.mark.parametrize("name", ["html", "elf", "php"])
def test_an_upload_that_is_not_audio_is_a_415_and_nothing_is_stored(platform, settings, name):
    ProfileFactory(external_id="p-1")
    upload = SimpleUploadedFile("clip.wav", HOSTILE[name], content_type="audio/wav")

    response = platform.post(
        "/api/v1/recordings",
        {
            "external_id": "r-1",
            "profile": "p-1",
            "recorded_at": "2026-01-31T12:00:00Z",
            "audio": upload,
        },
        format="multipart",
    )

    assert response.status_code == 415
    error = json.loads(response.content)["error"]
    assert error["code"] == "unsupported_media_type"
    assert "audio" in error["fields"]
    assert not Recording.objects.exists()
    assert not Artefact.objects.exists()
    assert _stored_files(settings.MEDIA_ROOT) == []


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["opus", "mp3-id3", "m4a", "webm", "flac"])
def test_each_format_is_ingested_through_the_api(platform, kind):
    ProfileFactory(external_id="p-1")
    upload = SimpleUploadedFile(f"clip.{kind}", SAMPLES[kind][0] + bytes(64))

    response = platform.post(
        "/api/v1/recordings",
        {
            "external_id": "r-1",
            "profile": "p-1",
            "recorded_at": "2026-01-31T12:00:00Z",
            "audio": upload,
        },
        format="multipart",
    )

    assert response.status_code == 201, response.content
    assert Artefact.objects.get(category="audio").size_bytes == len(SAMPLES[kind][0]) + 64
