"""Signed, short-lived audio links.

A link already given cannot be recalled, so it lives minutes, not hours
(docs/reliability.md); every fetch through it still re-checks eligibility. The signature
binds the item id and the time of signing; nothing else is in the URL.
"""

import hashlib
import hmac
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.core import signing
from django.utils import timezone
from django.utils.encoding import force_bytes

_SALT = "earshot.sampling.audio-link"
# Override with settings.REVIEW_LINK_SECONDS.
DEFAULT_LINK_SECONDS = 300


def link_seconds() -> int:
    return int(getattr(settings, "REVIEW_LINK_SECONDS", DEFAULT_LINK_SECONDS))


def link_expiry(now: datetime | None = None) -> datetime:
    return (now or timezone.now()) + timedelta(seconds=link_seconds())


def audio_path(item_id: str) -> str:
    return f"/api/v1/review-items/{item_id}/audio"


class _DrawSigner(signing.TimestampSigner):
    """Django's TimestampSigner, with its HMAC key derived once for a whole draw (a
    thousand links) instead of once per link, and one timestamp for all of them.

    The signatures are byte for byte those of TimestampSigner (salted_hmac derives the
    key as sha256(key_salt + secret)); tests/sampling/test_links.py verifies them with
    the stock signer, so a change in Django's scheme cannot pass unnoticed.
    """

    def __init__(self) -> None:
        super().__init__(salt=_SALT)
        derived = hashlib.sha256(force_bytes(self.salt) + b"signer" + force_bytes(self.key))
        self._mac = hmac.new(derived.digest(), digestmod=hashlib.sha256)
        self._timestamp = super().timestamp()

    def timestamp(self) -> str:
        return self._timestamp

    def signature(self, value: str | bytes, key: str | bytes | None = None) -> str:
        if key is not None:
            return super().signature(value, key)
        mac = self._mac.copy()
        mac.update(force_bytes(value))
        return signing.b64_encode(mac.digest()).decode()


def audio_links_sign(item_ids: Iterable[str]) -> dict[str, str]:
    """The `sig` query value of each item's audio link, by item id."""
    signer = _DrawSigner()
    return {item_id: signer.sign(item_id)[len(item_id) + 1 :] for item_id in item_ids}


class LinkInvalid(Exception):
    """The signature is wrong or belongs to another item."""


class LinkExpired(Exception):
    """The signature was right but is older than the link lifetime."""


def audio_link_verify(item_id: str, sig: str) -> None:
    """Returns when `sig` is a live signature for `item_id`; raises otherwise."""
    if not sig or len(sig) > 200:
        raise LinkInvalid
    try:
        signing.TimestampSigner(salt=_SALT).unsign(f"{item_id}:{sig}", max_age=link_seconds())
    except signing.SignatureExpired:
        raise LinkExpired from None
    except signing.BadSignature:
        raise LinkInvalid from None
