"""C2SP signed notes with Ed25519 signatures and tlog checkpoints, as
golang.org/x/mod/sumdb/note and C2SP tlog-checkpoint read them.

A verifier key is `<name>+<8 hex digits of the key hash>+<base64 of 0x01 || public key>`;
the key hash is the first 4 bytes (big-endian) of SHA-256(name || "\\n" || 0x01 || key).
A note is its text (ending in a newline), a blank line, and signature lines
`\\u2014 <name> <base64 of 4-byte key hash || 64-byte signature>\\n`; the signature is over
the text. A checkpoint's text is `<origin>\\n<tree size>\\n<base64 root hash>\\n`, then
optional extension lines.
"""

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ALG_ED25519 = 0x01
SIGNATURE_PREFIX = "\u2014 "


class NoteError(ValueError):
    """A malformed key, note or checkpoint, or a signature that does not hold."""


def key_hash(name: str, public_key: bytes) -> int:
    digest = hashlib.sha256(name.encode() + b"\n" + bytes([ALG_ED25519]) + public_key).digest()
    return int.from_bytes(digest[:4], "big")


def valid_name(name: str) -> bool:
    return bool(name) and not any(c.isspace() or c == "+" for c in name)


def verifier_key(name: str, public_key: bytes) -> str:
    encoded = base64.b64encode(bytes([ALG_ED25519]) + public_key).decode()
    return f"{name}+{key_hash(name, public_key):08x}+{encoded}"


@dataclass(frozen=True)
class Verifier:
    name: str
    key_hash: int
    public_key: bytes

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except InvalidSignature:
            return False
        return True


def parse_verifier_key(text: str) -> Verifier:
    parts = text.strip().split("+", 2)
    if len(parts) != 3 or not valid_name(parts[0]) or len(parts[1]) != 8:
        raise NoteError("malformed verifier key (want <name>+<8 hex digits>+<base64 key>)")
    name, hash_hex, encoded = parts
    try:
        hash_ = int(hash_hex, 16)
        key = base64.b64decode(encoded, validate=True)
    except (ValueError, binascii.Error) as exc:
        raise NoteError("malformed verifier key") from exc
    if len(key) != 33 or key[0] != ALG_ED25519:
        raise NoteError("verifier key is not an Ed25519 key")
    if key_hash(name, key[1:]) != hash_:
        raise NoteError("verifier key's hash does not match its name and key")
    return Verifier(name, hash_, key[1:])


def signature_line(name: str, hash_: int, signature: bytes) -> str:
    encoded = base64.b64encode(hash_.to_bytes(4, "big") + signature).decode()
    return f"{SIGNATURE_PREFIX}{name} {encoded}\n"


def _refuse_error_answer(note: str) -> None:
    """A file saved from an answer that was the server's JSON error envelope (such as
    `curl .../ledger/checkpoint > kept.checkpoint` before any checkpoint was signed)
    is named as that, not as a malformed note."""
    if not note.lstrip().startswith("{"):
        return
    try:
        body = json.loads(note)
    except (ValueError, RecursionError):
        return
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        raise NoteError(
            "this is an error answer from the server, not a checkpoint: "
            f"{error.get('code')}: {error.get('message')}"
        )


def open_note(note: str, verifier: Verifier) -> str:
    """The note's text if it carries a valid signature by `verifier`; NoteError otherwise.
    Signatures by other keys are ignored, as note.Open does with unknown keys."""
    _refuse_error_answer(note)
    split = note.rfind("\n\n")
    if split < 0 or not note.endswith("\n"):
        raise NoteError("malformed note (no blank line before the signatures)")
    text, signatures = note[: split + 1], note[split + 2 :]
    if any(ord(c) < 0x20 and c != "\n" for c in text):
        raise NoteError("malformed note (control characters in the text)")
    found = False
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_PREFIX):
            raise NoteError("malformed signature line")
        name, _, encoded = line[len(SIGNATURE_PREFIX) :].partition(" ")
        try:
            raw = base64.b64decode(encoded, validate=True)
        except binascii.Error as exc:
            raise NoteError("malformed signature line") from exc
        if len(raw) < 5:
            raise NoteError("malformed signature line")
        if name != verifier.name or int.from_bytes(raw[:4], "big") != verifier.key_hash:
            continue
        found = True
        if len(raw) != 68 or not verifier.verify(text.encode(), raw[4:]):
            raise NoteError(f"the signature by {name} does not verify")
    if not found:
        raise NoteError(f"the note is not signed by the key {verifier.name}")
    return text


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    tree_size: int
    root_hash: bytes
    text: str


def parse_checkpoint(text: str) -> Checkpoint:
    lines = text.split("\n")
    if len(lines) < 4 or lines[-1] != "":
        raise NoteError("malformed checkpoint (want origin, tree size and root hash lines)")
    origin, size_line, root_line = lines[0], lines[1], lines[2]
    if not origin or not size_line.isdigit() or (size_line != "0" and size_line[0] == "0"):
        raise NoteError("malformed checkpoint (origin or tree size)")
    try:
        root = base64.b64decode(root_line, validate=True)
    except binascii.Error as exc:
        raise NoteError("malformed checkpoint (root hash)") from exc
    if len(root) != 32:
        raise NoteError("malformed checkpoint (root hash is not 32 bytes)")
    return Checkpoint(origin, int(size_line), root, text)


def open_checkpoint(note: str, verifier: Verifier, *, origin: str | None = None) -> Checkpoint:
    checkpoint = parse_checkpoint(open_note(note, verifier))
    if origin is not None and checkpoint.origin != origin:
        raise NoteError(f"checkpoint is for origin {checkpoint.origin!r}, not {origin!r}")
    return checkpoint
