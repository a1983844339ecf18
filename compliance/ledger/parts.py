"""Per-profile parts of an entry that covers many profiles (a purge batch, a sample
draw), so that an evidence bundle proves one profile's part and shows nothing of the
others.

The entry's payload carries `parts_root` (base64 of the RFC 9162 Merkle root over the
parts' leaf hashes, SHA-256(0x00 || part), in index order) and `parts` (how many);
the parts themselves are rows of `LedgerEntryPart`, written with the entry in its
transaction and exported beside it. A part is the canonical JSON of
{profile, salt, ...what the entry records of that profile}; the salt (16 random
bytes) keeps a part from being guessed from its hash, which a bundle of another
profile never shows anyway, but a published root might help guess.
"""

import base64
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import connection

from earshot_verify.merkle import EMPTY_ROOT, root_from_leaf_hashes

from .canonical import canonical_bytes, leaf_hash
from .models import LedgerEntryPart

SALT_BYTES = 16


@dataclass(frozen=True)
class Part:
    profile: str
    part: bytes
    leaf_hash: bytes


def parts_build(parts: Mapping[str, Mapping[str, Any]]) -> list[Part]:
    """Each profile's part, salted and encoded once, in profile order (the tree's)."""
    built = []
    profiles = sorted(parts)
    salts = secrets.token_bytes(SALT_BYTES * len(profiles))  # one call: thousands of parts
    for n, profile in enumerate(profiles):
        body = {
            **parts[profile],
            "profile": profile,
            "salt": base64.b64encode(salts[n * SALT_BYTES : (n + 1) * SALT_BYTES]).decode(),
        }
        encoded = canonical_bytes(body)
        built.append(Part(profile, encoded, leaf_hash(encoded)))
    return built


def parts_root(parts: Sequence[Part]) -> bytes:
    return root_from_leaf_hashes([p.leaf_hash for p in parts]) if parts else EMPTY_ROOT


def parts_store(*, seq: int, parts: Sequence[Part]) -> None:
    """The rows, in the caller's transaction (the entry's)."""
    if not parts:
        return
    if connection.vendor == "postgresql":
        # COPY: a purge batch's thousands of parts would cost more as ORM INSERTs
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                "COPY ledger_ledgerentrypart (seq, index, profile, part, leaf_hash) FROM STDIN"
            ) as copy,
        ):
            for index, p in enumerate(parts):
                copy.write_row((seq, index, p.profile, p.part, p.leaf_hash))
        return
    LedgerEntryPart.objects.bulk_create(
        [
            LedgerEntryPart(seq=seq, index=i, profile=p.profile, part=p.part, leaf_hash=p.leaf_hash)
            for i, p in enumerate(parts)
        ],
        batch_size=2000,
    )


def _largest_power_below(n: int) -> int:
    return 1 << ((n - 1).bit_length() - 1)


def parts_inclusion_path(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 9162 2.1.3.1 PATH of part `index` among `leaf_hashes`."""
    if not 0 <= index < len(leaf_hashes):
        raise ValueError("part index outside the entry's parts")
    path: list[bytes] = []
    start, end = 0, len(leaf_hashes)
    while end - start > 1:
        k = _largest_power_below(end - start)
        if index < start + k:
            path.append(root_from_leaf_hashes(leaf_hashes[start + k : end]))
            end = start + k
        else:
            path.append(root_from_leaf_hashes(leaf_hashes[start : start + k]))
            start += k
    return list(reversed(path))


@dataclass(frozen=True)
class ProfilePart:
    """A profile's part of entry `seq`: where it sits among the entry's parts, its
    bytes, and its audit path to the entry's `parts_root`."""

    seq: int
    index: int
    count: int
    part: bytes
    path: list[bytes]

    @property
    def body(self) -> dict[str, Any]:
        decoded: dict[str, Any] = json.loads(self.part)
        return decoded


def profile_parts(*, profile: str, seqs: Iterable[int] | None = None) -> dict[int, ProfilePart]:
    """The profile's parts (of entries `seqs`, or all), by entry, with their paths."""
    rows = LedgerEntryPart.objects.filter(profile=profile)
    if seqs is not None:
        rows = rows.filter(seq__in=list(seqs))
    mine = list(rows.order_by("seq").values_list("seq", "index", "part"))
    if not mine:
        return {}
    hashes: dict[int, list[bytes]] = {}
    for seq, hash_ in (
        LedgerEntryPart.objects.filter(seq__in=[m[0] for m in mine])
        .order_by("seq", "index")
        .values_list("seq", "leaf_hash")
    ):
        hashes.setdefault(seq, []).append(bytes(hash_))
    return {
        seq: ProfilePart(
            seq, index, len(hashes[seq]), bytes(part), parts_inclusion_path(hashes[seq], index)
        )
        for seq, index, part in mine
    }


def entry_parts(*, seq: int) -> list[dict[str, Any]]:
    """Every part of entry `seq`, decoded, in index order (for the dispatcher that
    tells each profile's subscribers what the entry did to it)."""
    return [
        json.loads(bytes(part))
        for part in LedgerEntryPart.objects.filter(seq=seq)
        .order_by("index")
        .values_list("part", flat=True)
    ]
