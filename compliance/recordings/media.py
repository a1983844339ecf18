"""What an uploaded audio file is, read from its first bytes.

The name and the Content-Type a client sends are its own claims; the bytes are not.
Only the containers a voice platform records into are accepted, so that an HTML page,
a script or an executable is never stored and later served back as a "clip".
"""

from typing import IO, Any

from compliance.core.errors import UnsupportedMediaType, field_error

# Enough for every signature below (the Ogg and WebM ones sit a few dozen bytes in).
HEAD_BYTES = 64

# ISO base media (MP4) major brands that carry audio; an ftyp box is also how HEIC
# images and QuickTime movies begin.
_MP4_AUDIO_BRANDS = {
    b"M4A ",
    b"M4B ",
    b"M4P ",
    b"F4A ",
    b"mp41",
    b"mp42",
    b"isom",
    b"iso2",
    b"iso5",
    b"iso6",
    b"dash",
    b"3gp4",
    b"3gp5",
    b"3gp6",
    b"3g2a",
}


def _mpeg_frame(head: bytes) -> str | None:
    """An MPEG audio frame header (MP3 without an ID3 tag) or an ADTS (raw AAC) one."""
    if len(head) < 4 or head[0] != 0xFF or head[1] & 0xE0 != 0xE0:
        return None
    version = (head[1] >> 3) & 0b11
    layer = (head[1] >> 1) & 0b11
    if head[1] & 0xF6 == 0xF0:  # 12 sync bits, layer 00: ADTS
        sampling = (head[2] >> 2) & 0b1111
        return "audio/aac" if sampling < 13 else None
    bitrate = head[2] >> 4
    sampling = (head[2] >> 2) & 0b11
    if version == 0b01 or layer == 0b00 or bitrate == 0b1111 or sampling == 0b11:
        return None  # reserved values: not a frame header
    return "audio/mpeg"


def media_type_of(head: bytes) -> str | None:
    """The audio media type that `head` (a file's first bytes) starts, or None."""
    if head[:4] in (b"RIFF", b"RIFX", b"RF64") and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[:4] == b"fLaC":
        return "audio/flac"
    if head[:4] == b"OggS":
        # the first page's packet names the codec: Opus, Vorbis, or FLAC in Ogg
        if any(codec in head for codec in (b"OpusHead", b"\x01vorbis", b"\x7fFLAC")):
            return "audio/ogg"
        return None
    if head[:3] == b"ID3" and len(head) >= 10:
        return "audio/mpeg"
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_AUDIO_BRANDS:
        return "audio/mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":  # EBML: WebM or Matroska, by its DocType
        if b"webm" in head or b"matroska" in head:
            return "audio/webm"
        return None
    return _mpeg_frame(head)


def _head(file: IO[bytes] | Any) -> bytes:
    file.seek(0)
    head = file.read(HEAD_BYTES)
    file.seek(0)
    return head if isinstance(head, bytes) else b""


def audio_media_type(file: IO[bytes] | Any) -> str:
    """The audio type of an uploaded file, or a 415 `unsupported_media_type`."""
    media_type = media_type_of(_head(file))
    if media_type is None:
        message = "The audio file is not WAV, FLAC, Ogg (Opus or Vorbis), MP3, AAC/MP4 or WebM."
        raise UnsupportedMediaType(
            "unsupported_media_type",
            message,
            fields=field_error("audio", "unsupported_format", message),
        )
    return media_type
