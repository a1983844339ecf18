"""Compact JWS with Ed25519 (`alg` `EdDSA`, or `Ed25519` per RFC 9864), as receipts are."""

import base64
import binascii
import json
from typing import Any

from .note import NoteError, Verifier, parse_verifier_key

ALGORITHMS = ("EdDSA", "Ed25519")


class ReceiptError(ValueError):
    """A receipt that is malformed or whose signature does not hold."""


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    if not isinstance(text, str) or "=" in text:
        raise ReceiptError("not base64url without padding")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ReceiptError("not base64url") from exc


def receipt_open(token: str, verifier: Verifier) -> dict[str, Any]:
    """The receipt's claims if `verifier`'s key signed it; ReceiptError otherwise."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ReceiptError("a compact JWS has three parts")
    try:
        header = json.loads(b64url_decode(parts[0]))
        claims = json.loads(b64url_decode(parts[1]))
    except ValueError as exc:
        raise ReceiptError("the receipt's header or claims are not JSON") from exc
    if not isinstance(header, dict) or header.get("alg") not in ALGORITHMS:
        raise ReceiptError("the receipt is not signed with EdDSA / Ed25519")
    if not isinstance(claims, dict):
        raise ReceiptError("the receipt's claims are not an object")
    signature = b64url_decode(parts[2])
    if len(signature) != 64 or not verifier.verify(f"{parts[0]}.{parts[1]}".encode(), signature):
        raise ReceiptError(f"the receipt's signature does not verify with the key {verifier.name}")
    return claims


def verifier_of(key: str) -> Verifier:
    try:
        return parse_verifier_key(key)
    except NoteError as exc:
        raise ReceiptError(str(exc)) from exc
