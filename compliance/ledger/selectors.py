from collections.abc import Iterator
from dataclasses import dataclass

from .models import LedgerEntry
from .services import GENESIS_HASH, entry_hash


@dataclass(frozen=True)
class LedgerProblem:
    seq: int
    problem: str

    def __str__(self) -> str:
        return f"ledger entry #{self.seq}: {self.problem}"


@dataclass(frozen=True)
class LedgerVerification:
    entries_checked: int
    problem: LedgerProblem | None

    @property
    def ok(self) -> bool:
        return self.problem is None


def _entries(chunk: int) -> Iterator[LedgerEntry]:
    last_id = -1
    while True:
        batch = list(LedgerEntry.objects.filter(id__gt=last_id).order_by("id")[:chunk])
        if not batch:
            return
        yield from batch
        last_id = batch[-1].id


def ledger_verify(*, chunk: int = 5000) -> LedgerVerification:
    """Walk the chain in insertion order and name the first entry that does not hold.

    Insertion order is the primary key's; `seq` must follow it densely. An edited entry
    fails its own hash; a removed one leaves a gap in `seq`; a reordered one (rows with
    swapped contents or sequence numbers) breaks the order or the link to its
    predecessor.
    """
    expected_seq = 1
    prev_hash = GENESIS_HASH
    checked = 0
    for entry in _entries(chunk):
        if entry.seq != expected_seq:
            if (
                entry.seq > expected_seq
                and not LedgerEntry.objects.filter(seq=expected_seq).exists()
            ):
                return LedgerVerification(checked, LedgerProblem(expected_seq, "missing (removed)"))
            # The expected entry exists but later in insertion order: rows were reordered.
            return LedgerVerification(
                checked,
                LedgerProblem(entry.seq, f"out of order (found where #{expected_seq} belongs)"),
            )
        recomputed = entry_hash(
            seq=entry.seq,
            created_at=entry.created_at,
            kind=entry.kind,
            subject=entry.subject,
            actor=entry.actor,
            payload=entry.payload,
            prev_hash=entry.prev_hash,
        )
        if recomputed != entry.hash:
            return LedgerVerification(
                checked, LedgerProblem(entry.seq, "content does not match its hash (edited)")
            )
        if entry.prev_hash != prev_hash:
            return LedgerVerification(
                checked, LedgerProblem(entry.seq, "does not link to the entry before it")
            )
        prev_hash = entry.hash
        expected_seq += 1
        checked += 1
    return LedgerVerification(checked, None)
