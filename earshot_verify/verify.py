"""What the command line checks: a checkpoint (against the key, and optionally against
an earlier checkpoint with a consistency proof), and a bundle of entries with their
inclusion proofs and the checkpoint they prove against."""

import base64
import binascii
import json
from typing import Any

from .merkle import ProofError, hash_leaf, verify_consistency, verify_inclusion
from .note import Checkpoint, NoteError, Verifier, open_checkpoint


class VerificationFailed(Exception):
    """The first thing that does not hold, named."""


def _b64(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise VerificationFailed(f"{what} is not base64 text")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as exc:
        raise VerificationFailed(f"{what} is not valid base64") from exc


def _hashes(values: Any, what: str) -> list[bytes]:
    if not isinstance(values, list):
        raise VerificationFailed(f"{what} is not a list of hashes")
    hashes = [_b64(v, f"{what}[{i}]") for i, v in enumerate(values)]
    if any(len(h) != 32 for h in hashes):
        raise VerificationFailed(f"{what} holds a hash that is not 32 bytes")
    return hashes


def checkpoint_verified(note: str, verifier: Verifier, what: str = "checkpoint") -> Checkpoint:
    try:
        return open_checkpoint(note, verifier)
    except NoteError as exc:
        raise VerificationFailed(f"{what}: {exc}") from exc


def consistent(earlier: Checkpoint, later: Checkpoint, proof: Any) -> None:
    """`later` extends `earlier`, as the consistency proof ({from, to, hashes}) shows."""
    if earlier.origin != later.origin:
        raise VerificationFailed(
            f"the checkpoints are of different logs ({earlier.origin!r}, {later.origin!r})"
        )
    if later.tree_size < earlier.tree_size:
        raise VerificationFailed(
            f"the checkpoint of size {later.tree_size} is smaller than the earlier one of "
            f"size {earlier.tree_size}: the log was shortened"
        )
    if later.tree_size == earlier.tree_size:
        if later.root_hash != earlier.root_hash:
            raise VerificationFailed(
                f"two checkpoints of size {later.tree_size} with different roots: the log "
                "was rewritten"
            )
        return
    if not isinstance(proof, dict):
        raise VerificationFailed("no consistency proof from the earlier checkpoint")
    if (proof.get("from"), proof.get("to")) != (earlier.tree_size, later.tree_size):
        raise VerificationFailed(
            f"the consistency proof is from {proof.get('from')} to {proof.get('to')}, not "
            f"from {earlier.tree_size} to {later.tree_size}"
        )
    try:
        verify_consistency(
            first_size=earlier.tree_size,
            second_size=later.tree_size,
            proof=_hashes(proof.get("hashes"), "consistency proof"),
            first_root=earlier.root_hash,
            second_root=later.root_hash,
        )
    except ProofError as exc:
        raise VerificationFailed(
            f"the checkpoint of size {later.tree_size} is not consistent with the earlier one "
            f"of size {earlier.tree_size}: {exc}"
        ) from exc


def _subset(claimed: Any, recorded: Any, path: str) -> None:
    """Every plain field claimed equals what the leaf records."""
    if isinstance(claimed, dict):
        if not isinstance(recorded, dict):
            raise VerificationFailed(f"{path} is not what the leaf records")
        for key, value in claimed.items():
            if key not in recorded:
                raise VerificationFailed(f"{path}.{key} is not in the leaf")
            _subset(value, recorded[key], f"{path}.{key}")
    elif claimed != recorded or type(claimed) is not type(recorded):
        raise VerificationFailed(f"{path} is {claimed!r} but the leaf records {recorded!r}")


def entry_verified(entry: Any, checkpoint: Checkpoint, what: str) -> dict[str, Any]:
    """An entry of a bundle: its leaf, the leaf's inclusion in the checkpoint, and its
    plain fields (`record`) against the leaf. Returns the leaf, decoded."""
    if not isinstance(entry, dict) or not isinstance(entry.get("seq"), int):
        raise VerificationFailed(f"{what} has no seq")
    seq = entry["seq"]
    what = f"{what} (ledger entry #{seq})"
    leaf = _b64(entry.get("leaf"), f"{what} leaf")
    leaf_hash = hash_leaf(leaf)
    if "leaf_hash" in entry and _b64(entry["leaf_hash"], f"{what} leaf_hash") != leaf_hash:
        raise VerificationFailed(f"{what}: leaf_hash is not the hash of its leaf")
    try:
        decoded = json.loads(leaf)
    except ValueError as exc:
        raise VerificationFailed(f"{what}: the leaf is not JSON") from exc
    if not isinstance(decoded, dict) or decoded.get("seq") != seq:
        raise VerificationFailed(f"{what}: the leaf records another entry number")
    try:
        verify_inclusion(
            leaf_hash=leaf_hash,
            index=seq - 1,
            tree_size=checkpoint.tree_size,
            proof=_hashes(entry.get("inclusion"), f"{what} inclusion proof"),
            root=checkpoint.root_hash,
        )
    except ProofError as exc:
        raise VerificationFailed(
            f"{what}: the inclusion proof does not reach the checkpoint of size "
            f"{checkpoint.tree_size}: {exc}"
        ) from exc
    if "record" in entry:
        _subset(entry["record"], decoded, f"{what} record")
    if "part" in entry:
        part_verified(entry["part"], decoded, what)
    return decoded


def part_verified(part: Any, leaf: dict[str, Any], what: str) -> dict[str, Any]:
    """One profile's part of an entry that covers many: its audit path reaches the
    `parts_root` the leaf commits to. Returns the part, decoded."""
    payload = leaf.get("payload")
    if not isinstance(payload, dict) or not isinstance(payload.get("parts"), int):
        raise VerificationFailed(f"{what}: the leaf commits to no parts, yet a part is shown")
    if not isinstance(part, dict) or not isinstance(part.get("index"), int):
        raise VerificationFailed(f"{what}: the part has no index")
    raw = _b64(part.get("part"), f"{what} part")
    root = _b64(payload.get("parts_root"), f"{what} parts_root")
    try:
        verify_inclusion(
            leaf_hash=hash_leaf(raw),
            index=part["index"],
            tree_size=payload["parts"],
            proof=_hashes(part.get("inclusion"), f"{what} part's inclusion proof"),
            root=root,
        )
    except ProofError as exc:
        raise VerificationFailed(
            f"{what}: the part is not the one the entry's parts_root commits to: {exc}"
        ) from exc
    try:
        decoded = json.loads(raw)
    except ValueError as exc:
        raise VerificationFailed(f"{what}: the part is not JSON") from exc
    if not isinstance(decoded, dict):
        raise VerificationFailed(f"{what}: the part is not an object")
    return decoded


def bundle_verified(
    bundle: Any, verifier: Verifier, *, earlier: str | None = None
) -> tuple[Checkpoint, int]:
    """A bundle: its checkpoint (signed, and consistent with `earlier` if given), and
    every entry in it. Returns the checkpoint and how many entries hold."""
    if not isinstance(bundle, dict) or not isinstance(bundle.get("checkpoint"), str):
        raise VerificationFailed("the bundle has no checkpoint")
    checkpoint = checkpoint_verified(bundle["checkpoint"], verifier, "the bundle's checkpoint")
    if earlier is not None:
        consistent(
            checkpoint_verified(earlier, verifier, "the earlier checkpoint"),
            checkpoint,
            bundle.get("consistency"),
        )
    entries = bundle.get("entries")
    if not isinstance(entries, list):
        raise VerificationFailed("the bundle has no list of entries")
    seqs = [e.get("seq") if isinstance(e, dict) else None for e in entries]
    for index, entry in enumerate(entries):
        entry_verified(entry, checkpoint, f"entry {index + 1}")
    if seqs != sorted(seqs) or len(set(seqs)) != len(seqs):
        raise VerificationFailed("the bundle's entries are not in ledger order")
    plain_fields_verified(bundle)
    return checkpoint, len(entries)


def receipt_bound(claims: dict[str, Any], bundle: Any, verifier: Verifier) -> Checkpoint:
    """The receipt's ledger entry is in the (verified) bundle, with the same leaf hash,
    and what the receipt says is what the leaf records."""
    checkpoint, _ = bundle_verified(bundle, verifier)
    ledger = claims.get("ledger")
    if not isinstance(ledger, dict) or not isinstance(ledger.get("seq"), int):
        raise VerificationFailed("the receipt binds no ledger entry")
    entry = next((e for e in bundle["entries"] if e.get("seq") == ledger["seq"]), None)
    if entry is None:
        raise VerificationFailed(f"the bundle does not hold ledger entry #{ledger['seq']}")
    leaf = _b64(entry["leaf"], "leaf")
    if _b64(ledger.get("leaf_hash"), "the receipt's leaf_hash") != hash_leaf(leaf):
        raise VerificationFailed(
            f"the receipt's leaf_hash is not that of ledger entry #{ledger['seq']}"
        )
    recorded = json.loads(leaf)
    payload = recorded.get("payload", {})
    if "event" in claims:
        kind = {"given": "consent.granted", "withdrawn": "consent.withdrawn"}.get(claims["event"])
        if recorded.get("kind") != kind:
            raise VerificationFailed(
                f"the receipt says consent was {claims['event']} but ledger entry "
                f"#{ledger['seq']} records {recorded.get('kind')}"
            )
        for claim, field in (("method", "channel"), ("notice_version", "notice_version")):
            if claims.get(claim) != payload.get(field):
                raise VerificationFailed(
                    f"the receipt's {claim} is {claims.get(claim)!r} but ledger entry "
                    f"#{ledger['seq']} records {payload.get(field)!r}"
                )
        if claims.get("purposes") != [payload.get("purpose")]:
            raise VerificationFailed(
                f"the receipt's purposes differ from ledger entry #{ledger['seq']}"
            )
    return checkpoint


def receipt_self_bound(claims: dict[str, Any]) -> None:
    """A receipt that carries its entry's leaf (a purge receipt): the leaf's hash is
    the bound `leaf_hash`, the profile's part reaches the leaf's `parts_root`, and what
    the receipt says (principal, recordings, time) is what the part and leaf record.
    A receipt without a leaf is bound only by its signature here (use --bundle)."""
    ledger = claims.get("ledger")
    if not isinstance(ledger, dict) or "leaf" not in ledger:
        return
    seq = ledger.get("seq")
    what = f"the receipt (ledger entry #{seq})"
    leaf = _b64(ledger.get("leaf"), f"{what} leaf")
    if _b64(ledger.get("leaf_hash"), f"{what} leaf_hash") != hash_leaf(leaf):
        raise VerificationFailed(f"{what}: leaf_hash is not the hash of its leaf")
    try:
        recorded = json.loads(leaf)
    except ValueError as exc:
        raise VerificationFailed(f"{what}: the leaf is not JSON") from exc
    if not isinstance(recorded, dict) or recorded.get("seq") != seq:
        raise VerificationFailed(f"{what}: the leaf records another entry number")
    if "part" not in ledger:
        return
    part = part_verified(ledger["part"], recorded, what)
    if recorded.get("kind") != "purge.batch":
        raise VerificationFailed(f"{what}: the leaf records {recorded.get('kind')}, not a purge")
    if claims.get("pii_principal") != part.get("profile"):
        raise VerificationFailed(f"{what}: the part is another profile's")
    if claims.get("recordings") != part.get("recordings"):
        raise VerificationFailed(f"{what}: recordings are not what the part records")
    if claims.get("purged_at") != recorded.get("created_at"):
        raise VerificationFailed(f"{what}: purged_at is not the leaf's time")


def plain_fields_verified(bundle: dict[str, Any]) -> None:
    """The plain fields of an evidence bundle against the leaves beside them: each
    consent event says what its leaf records, none is dropped, they keep ledger order;
    every other record's kind, time and payload are its leaf's."""
    leaves = {}
    parts = {}
    for entry in bundle.get("entries", []):
        leaves[entry["seq"]] = json.loads(_b64(entry["leaf"], "leaf"))
        if "part" in entry:
            parts[entry["seq"]] = json.loads(_b64(entry["part"]["part"], "part"))
    if "consent_events" not in bundle:
        return  # a plain proof bundle: no plain fields beside its leaves
    for seq, part in parts.items():
        if part.get("profile") != bundle.get("profile"):
            raise VerificationFailed(
                f"ledger entry #{seq}: the part shown is another profile's, not "
                f"{bundle.get('profile')!r}'s"
            )
    purges_verified(bundle.get("purges", []), leaves, parts)
    reviews_verified(bundle.get("reviews", []), leaves, parts)
    events = bundle["consent_events"]
    if not isinstance(events, list):
        raise VerificationFailed("consent_events is not a list")
    seqs = []
    for index, event in enumerate(events):
        what = f"consent event {index + 1}"
        if not isinstance(event, dict) or event.get("seq") not in leaves:
            raise VerificationFailed(f"{what} has no leaf in the bundle")
        leaf = leaves[event["seq"]]
        what = f"{what} (ledger entry #{event['seq']})"
        kind = {True: "consent.granted", False: "consent.withdrawn"}.get(event.get("granted"))
        if leaf.get("kind") != kind:
            raise VerificationFailed(
                f"{what}: granted is {event.get('granted')!r} but the leaf records "
                f"{leaf.get('kind')}"
            )
        payload = leaf.get("payload", {})
        for field in ("purpose", "channel", "notice_version"):
            if event.get(field) != payload.get(field):
                raise VerificationFailed(
                    f"{what}: {field} is {event.get(field)!r} but the leaf records "
                    f"{payload.get(field)!r}"
                )
        if event.get("time") != leaf.get("created_at"):
            raise VerificationFailed(f"{what}: time is not the leaf's")
        seqs.append(event["seq"])
    if seqs != sorted(seqs):
        raise VerificationFailed("the consent events are not in ledger order (reordered)")
    recorded = sorted(s for s, leaf in leaves.items() if leaf.get("kind") in CONSENT_KINDS)
    missing = sorted(set(recorded) - set(seqs))
    if missing:
        raise VerificationFailed(
            f"ledger entry #{missing[0]} records a consent event the bundle's consent_events "
            "leave out (dropped)"
        )
    for name in ("retention_choices", "deletions", "other_records"):
        for index, record in enumerate(bundle.get(name, [])):
            what = f"{name} {index + 1}"
            if not isinstance(record, dict) or record.get("seq") not in leaves:
                raise VerificationFailed(f"{what} has no leaf in the bundle")
            leaf = leaves[record["seq"]]
            for field, leaf_field in (("kind", "kind"), ("time", "created_at"),
                                      ("payload", "payload")):  # fmt: skip
                if record.get(field) != leaf.get(leaf_field):
                    raise VerificationFailed(
                        f"{what} (ledger entry #{record['seq']}): {field} is not what the "
                        "leaf records"
                    )


def _with_part(
    record: Any, what: str, kind: str, leaves: dict[int, Any], parts: dict[int, Any]
) -> tuple[dict[str, Any], dict[str, Any]]:
    if not isinstance(record, dict) or record.get("seq") not in leaves:
        raise VerificationFailed(f"{what} has no leaf in the bundle")
    seq = record["seq"]
    leaf = leaves[seq]
    if leaf.get("kind") != kind:
        raise VerificationFailed(
            f"{what} (ledger entry #{seq}): the leaf records {leaf.get('kind')}"
        )
    if seq not in parts:
        raise VerificationFailed(f"{what} (ledger entry #{seq}): the bundle shows no part of it")
    return leaf, parts[seq]


def purges_verified(purges: Any, leaves: dict[int, Any], parts: dict[int, Any]) -> None:
    """Each purge says what the profile's part of its batch records, when the batch
    was; none of the batches whose part the bundle shows is left out."""
    if not isinstance(purges, list):
        raise VerificationFailed("purges is not a list")
    shown = set()
    for index, purge in enumerate(purges):
        what = f"purge {index + 1}"
        leaf, part = _with_part(purge, what, "purge.batch", leaves, parts)
        what = f"{what} (ledger entry #{purge['seq']})"
        if purge.get("time") != leaf.get("created_at"):
            raise VerificationFailed(f"{what}: time is not the leaf's")
        if purge.get("recordings") != part.get("recordings"):
            raise VerificationFailed(f"{what}: recordings are not what the part records")
        shown.add(purge["seq"])
    for seq in sorted(parts):
        if leaves[seq].get("kind") == "purge.batch" and seq not in shown:
            raise VerificationFailed(
                f"ledger entry #{seq} records a purge of this profile's recordings that the "
                "bundle's purges leave out (dropped)"
            )


def reviews_verified(reviews: Any, leaves: dict[int, Any], parts: dict[int, Any]) -> None:
    """Each review is an item of the profile's part of a draw (where its reviewer was,
    for which purpose, and when it was handed out, as the draw's leaf records), with
    its clip access, if any, as the access's own leaf records; no drawn item is left
    out."""
    if not isinstance(reviews, list):
        raise VerificationFailed("reviews is not a list")
    shown = set()
    for index, review in enumerate(reviews):
        what = f"review {index + 1}"
        leaf, part = _with_part(review, what, "sample.drawn", leaves, parts)
        what = f"{what} (ledger entry #{review['seq']})"
        item = {"review_item": review.get("review_item"), "recording": review.get("recording")}
        if item not in part.get("items", []):
            raise VerificationFailed(f"{what}: the part records no such item and recording")
        payload = leaf.get("payload", {})
        for field in ("purpose", "reviewer_location"):
            if review.get(field) != payload.get(field):
                raise VerificationFailed(
                    f"{what}: {field} is {review.get(field)!r} but the leaf records "
                    f"{payload.get(field)!r}"
                )
        if review.get("delivered_at") != leaf.get("created_at"):
            raise VerificationFailed(f"{what}: delivered_at is not the draw's time")
        access_seq = review.get("clip_access_seq")
        if access_seq is None:
            if review.get("clip_fetched_at") is not None:
                raise VerificationFailed(f"{what}: clip_fetched_at names no ledger entry")
        else:
            access = leaves.get(access_seq)
            if (
                access is None
                or access.get("kind") != "review_item.accessed"
                or access.get("subject") != f"review_item:{item['review_item']}"
                or access.get("payload", {}).get("action") != "audio"
            ):
                raise VerificationFailed(
                    f"{what}: ledger entry #{access_seq} records no clip access of this item"
                )
            if review.get("clip_fetched_at") != access.get("created_at"):
                raise VerificationFailed(f"{what}: clip_fetched_at is not the access's time")
        shown.add(item["review_item"])
    for seq in sorted(parts):
        if leaves[seq].get("kind") != "sample.drawn":
            continue
        for item in parts[seq].get("items", []):
            if item.get("review_item") not in shown:
                raise VerificationFailed(
                    f"ledger entry #{seq} hands out item {item.get('review_item')} of this "
                    "profile that the bundle's reviews leave out (dropped)"
                )


CONSENT_KINDS = ("consent.granted", "consent.withdrawn")
