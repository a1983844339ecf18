"""The ledger's signing key: Ed25519, in the signed-note signer key format
`PRIVATE+KEY+<name>+<8 hex digits of the key hash>+<base64 of 0x01 || 32-byte seed>`.

From LEDGER_SIGNING_KEY (the key, or a path to a file holding it). When that is unset,
the first process that needs a key generates one into LEDGER_KEY_DIR/signing.key: the
file is written whole under a temporary name and then linked to its final name, which
fails if another process got there first; the loser reads the winner's file, so every
process of the deployment signs with one key.
"""

import base64
import binascii
import functools
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from earshot_verify.jws import b64url
from earshot_verify.note import (
    ALG_ED25519,
    key_hash,
    signature_line,
    valid_name,
    verifier_key,
)

from .canonical import canonical_bytes

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "signing.key"


@dataclass(frozen=True)
class SigningKey:
    name: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> bytes:
        return self.private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def key_hash(self) -> int:
        return key_hash(self.name, self.public_key)

    @property
    def verifier_key(self) -> str:
        return verifier_key(self.name, self.public_key)

    def signer_key(self) -> str:
        seed = self.private_key.private_bytes_raw()
        encoded = base64.b64encode(bytes([ALG_ED25519]) + seed).decode()
        return f"PRIVATE+KEY+{self.name}+{self.key_hash:08x}+{encoded}"

    def sign_note(self, text: str) -> str:
        """`text` (ending in a newline) as a signed note."""
        signature = self.private_key.sign(text.encode())
        return f"{text}\n{signature_line(self.name, self.key_hash, signature)}"


def signing_key_generate(name: str) -> SigningKey:
    if not valid_name(name):
        raise ValueError("a key name is not empty and holds no spaces or '+'")
    return SigningKey(name, Ed25519PrivateKey.generate())


def signing_key_parse(text: str) -> SigningKey:
    parts = text.strip().split("+", 4)
    if len(parts) != 5 or parts[:2] != ["PRIVATE", "KEY"] or not valid_name(parts[2]):
        raise ValueError("not a signer key (want PRIVATE+KEY+<name>+<hash>+<base64 key>)")
    _, _, name, hash_hex, encoded = parts
    try:
        raw = base64.b64decode(encoded, validate=True)
        hash_ = int(hash_hex, 16)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not a signer key (bad hash or base64)") from exc
    if len(raw) != 33 or raw[0] != ALG_ED25519:
        raise ValueError("not an Ed25519 signer key")
    key = SigningKey(name, Ed25519PrivateKey.from_private_bytes(raw[1:]))
    if key.key_hash != hash_:
        raise ValueError("the signer key's hash does not match its name and key")
    return key


def _create_once(path: Path) -> SigningKey:
    """The key in `path`, generated now if no process has yet (see the module's doc)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = signing_key_generate(settings.LEDGER_ORIGIN)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=".signing-")
        try:
            os.write(fd, (key.signer_key() + "\n").encode())
            os.fsync(fd)
            os.close(fd)
            os.link(temporary, path)
            logger.warning(
                "ledger.signing_key_generated path=%s verifier=%s (set LEDGER_SIGNING_KEY in "
                "production; `manage.py ledger_keygen` prints one)",
                path,
                key.verifier_key,
            )
            return key
        except FileExistsError:
            pass  # another process created it first: use theirs
        finally:
            Path(temporary).unlink(missing_ok=True)
    return signing_key_parse(path.read_text())


@functools.cache
def _load(configured: str, key_dir: str) -> SigningKey:
    if not configured:
        return _create_once(Path(key_dir) / KEY_FILE_NAME)
    if configured.startswith("PRIVATE+KEY+"):
        return signing_key_parse(configured)
    try:
        return signing_key_parse(Path(configured).read_text())
    except (OSError, ValueError) as exc:
        raise ImproperlyConfigured(f"LEDGER_SIGNING_KEY: {exc}") from exc


def signing_key() -> SigningKey:
    """The key checkpoints are signed with now."""
    return _load(settings.LEDGER_SIGNING_KEY, str(settings.LEDGER_KEY_DIR))


def receipt_sign(claims: dict[str, Any]) -> str:
    """`claims` as a compact JWS (EdDSA) signed with the ledger's key; `kid` names the
    key as its verifier key does (`<name>+<key hash>`)."""
    key = signing_key()
    header = {"alg": "EdDSA", "typ": "earshot-receipt+jwt", "kid": f"{key.name}+{key.key_hash:08x}"}
    signing_input = f"{b64url(canonical_bytes(header))}.{b64url(canonical_bytes(claims))}"
    signature = key.private_key.sign(signing_input.encode())
    return f"{signing_input}.{b64url(signature)}"
