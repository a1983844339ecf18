"""Subscription secrets: made, encrypted at rest, and used to sign.

A secret must be recoverable to sign with it, so it cannot be hashed; it is encrypted
with Fernet under a key derived (HKDF-SHA256) from WEBHOOKS_ENCRYPTION_KEY, or from
SECRET_KEY when that is not set, so a database dump alone does not give the secrets.
"""

import base64
import secrets
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from standardwebhooks.webhooks import Webhook

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret


def secret_new() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()


@lru_cache(maxsize=4)
def _fernet(material: str) -> Fernet:
    key = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"earshot webhooks secrets"
    ).derive(material.encode())
    return Fernet(base64.urlsafe_b64encode(key))


def _cipher() -> Fernet:
    return _fernet(settings.WEBHOOKS_ENCRYPTION_KEY or settings.SECRET_KEY)


def secret_encrypt(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def secret_decrypt(token: str) -> str:
    return _decrypt(token, settings.WEBHOOKS_ENCRYPTION_KEY or settings.SECRET_KEY)


@lru_cache(maxsize=1024)
def _decrypt(token: str, material: str) -> str:
    """Cached: the sender decrypts every subscription's secret at each claim. The token
    is the ciphertext, so a rotated secret is a new entry."""
    return _fernet(material).decrypt(token.encode()).decode()


@lru_cache(maxsize=1024)
def signer(secret: str) -> Webhook:
    """A Standard Webhooks signer for `secret` (its key decoded once)."""
    return Webhook(secret)


def signature_header(
    *, signers: Sequence[Webhook], msg_id: str, timestamp: datetime, body: bytes
) -> str:
    """`webhook-signature`: one `v1,...` per secret, space-separated (the Standard
    Webhooks way to sign with an old and a new secret during a rotation)."""
    return " ".join(s.sign(msg_id=msg_id, timestamp=timestamp, data=body) for s in signers)
