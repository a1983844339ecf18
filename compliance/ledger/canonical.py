"""The canonical encoding of a ledger entry: the bytes its leaf in the Merkle tree is.

RFC 8785 (JSON Canonicalization Scheme) for the values the ledger holds: objects with
their keys sorted by UTF-16 code units, no whitespace, strings with only the escapes
JSON requires (lower-case \\u00xx for the other control characters), UTF-8. Numbers are
integers only: JCS writes a number as ECMAScript prints a double, which no two
languages agree on for fractions, so a float is refused at append rather than encoded
one way here and another way by a verifier. Integers beyond 2**53 are refused for the
same reason (a double cannot hold them exactly).

The bytes are computed once, when the entry is appended, and stored; everything that
proves the entry (its hash, its leaf hash, the tree) is computed from the stored bytes,
never from a re-encoding of the columns.
"""

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

MAX_SAFE_INTEGER = 2**53 - 1


class NotCanonical(ValueError):
    """A value the canonical encoding does not take (a float, a huge integer, a lone
    surrogate, a non-string key, a type JSON has not)."""


def _utf16_key(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _normalised(value: Any, allow_floats: bool) -> Any:
    kind = type(value)
    if kind is str:
        return value
    if kind is dict and all(type(key) is str and key.isascii() for key in value):
        # ASCII keys sort alike by code point and by UTF-16 code unit: the common case,
        # without the UTF-16 encoding of every key (a purge batch's thousands of
        # per-profile parts are encoded one by one)
        return {key: _normalised(value[key], allow_floats) for key in sorted(value)}
    if kind is list:
        return [_normalised(item, allow_floats) for item in value]
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise NotCanonical(f"integer {value} is beyond 2**53 and has no exact JSON form")
        return value
    if isinstance(value, float):
        if allow_floats:
            return value
        raise NotCanonical("floats are not taken into the ledger; record an integer or text")
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise NotCanonical(f"object key {key!r} is not a string")
        return {key: _normalised(value[key], allow_floats) for key in sorted(value, key=_utf16_key)}
    if isinstance(value, list | tuple):
        return [_normalised(item, allow_floats) for item in value]
    raise NotCanonical(f"{type(value).__name__} has no JSON form")


def canonical_bytes(value: Any, *, allow_floats: bool = False) -> bytes:
    """`value` in RFC 8785 form, as UTF-8 bytes.

    `allow_floats` only for entries written before floats were refused (encoding them
    as Python prints them), so that their leaves can still be computed once."""
    text = json.dumps(
        _normalised(value, allow_floats), ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate
        raise NotCanonical("text holds a lone surrogate, which UTF-8 cannot carry") from exc


def leaf_hash(leaf: bytes) -> bytes:
    """RFC 9162's hash of a leaf: SHA-256(0x00 || leaf)."""
    return hashlib.sha256(b"\x00" + leaf).digest()


def entry_leaf(
    *,
    seq: int,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
    prev_hash: str,
    allow_floats: bool = False,
) -> bytes:
    """The entry's canonical encoding: its leaf in the Merkle tree, and what its chain
    hash is the SHA-256 of. Raises NotCanonical for what the encoding refuses."""
    return canonical_bytes(
        {
            "seq": seq,
            "created_at": created_at.astimezone(UTC).isoformat(),
            "kind": kind,
            "subject": subject,
            "actor": actor,
            "payload": payload,
            "prev_hash": prev_hash,
        },
        allow_floats=allow_floats,
    )


def entry_leaf_around(
    *,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
) -> tuple[bytes, bytes]:
    """The entry's leaf around its place in the chain, for an append that learns that
    place in the database (`ledger_append_entry`, migration 0009): (head, tail) such
    that `entry_leaf(seq=seq, prev_hash=prev_hash, ...)` is
    `head + prev_hash + b'","seq":' + str(seq) + tail` for any hex `prev_hash` and
    `seq` (the keys sort as actor, created_at, kind, payload, prev_hash, seq, subject).
    Raises NotCanonical for what the encoding refuses."""
    leaf = entry_leaf(
        seq=0,
        created_at=created_at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=payload,
        prev_hash="",
    )
    tail = b',"subject":' + canonical_bytes(subject) + b"}"
    around = b'"prev_hash":"","seq":0' + tail
    if not leaf.endswith(around):
        raise RuntimeError("the leaf's keys no longer end with prev_hash, seq, subject")
    return leaf[: -len(around)] + b'"prev_hash":"', tail


def leaf_spliced(head: bytes, tail: bytes, *, seq: int, prev_hash: str) -> bytes:
    """The leaf `entry_leaf_around` cut, with the entry's place in the chain put in."""
    return head + prev_hash.encode() + b'","seq":' + str(seq).encode() + tail


def entry_hash(
    *,
    seq: int,
    created_at: datetime,
    kind: str,
    subject: str,
    actor: str,
    payload: dict[str, Any],
    prev_hash: str,
) -> str:
    """The chain hash of an entry with these fields: SHA-256 of its leaf, hex. Floats
    are taken (entries from before they were refused), so this also re-checks those."""
    leaf = entry_leaf(
        seq=seq,
        created_at=created_at,
        kind=kind,
        subject=subject,
        actor=actor,
        payload=payload,
        prev_hash=prev_hash,
        allow_floats=True,
    )
    return hashlib.sha256(leaf).hexdigest()
