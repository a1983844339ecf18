"""Reading the ledger: verifying its chain, whole or from a verified point on, and what
the last full verifications found."""

from collections.abc import Iterator
from dataclasses import dataclass

from .models import LedgerEntry, VerificationRun
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


@dataclass(frozen=True)
class ChainPoint:
    """The end of a verified stretch of the chain: its last entry's row id, number and
    hash. `GENESIS` stands before the first entry."""

    id: int
    seq: int
    hash: str


GENESIS = ChainPoint(id=0, seq=0, hash=GENESIS_HASH)


@dataclass(frozen=True)
class ChainWalk:
    """How far the chain holds after `start`: up to `end`, then `problem` (or nothing
    more to read, if `complete`)."""

    start: ChainPoint
    end: ChainPoint
    problem: LedgerProblem | None
    complete: bool

    @property
    def ok(self) -> bool:
        return self.problem is None

    @property
    def entries_checked(self) -> int:
        return self.end.seq - self.start.seq


def _recomputed(entry: LedgerEntry) -> str:
    return entry_hash(
        seq=entry.seq,
        created_at=entry.created_at,
        kind=entry.kind,
        subject=entry.subject,
        actor=entry.actor,
        payload=entry.payload,
        prev_hash=entry.prev_hash,
    )


def _problem_with(entry: LedgerEntry, *, after: ChainPoint) -> LedgerProblem | None:
    """What is wrong with `entry` as the one that follows `after`, if anything.

    Insertion order is the primary key's; `seq` must follow it densely. An edited entry
    fails its own hash; a removed one leaves a gap in `seq`; a reordered one (rows with
    swapped contents or sequence numbers) breaks the order or the link to its
    predecessor.
    """
    expected_seq = after.seq + 1
    if entry.seq != expected_seq:
        if entry.seq > expected_seq and not LedgerEntry.objects.filter(seq=expected_seq).exists():
            return LedgerProblem(expected_seq, "missing (removed)")
        # The expected entry exists but later in insertion order: rows were reordered.
        return LedgerProblem(entry.seq, f"out of order (found where #{expected_seq} belongs)")
    if _recomputed(entry) != entry.hash:
        return LedgerProblem(entry.seq, "content does not match its hash (edited)")
    if entry.prev_hash != after.hash:
        return LedgerProblem(entry.seq, "does not link to the entry before it")
    return None


def _anchor_problem(point: ChainPoint) -> LedgerProblem | None:
    """Whether the last entry of a stretch verified earlier is still what was verified:
    a walk from it trusts everything up to it."""
    entry = LedgerEntry.objects.filter(pk=point.id).first()
    if entry is None or entry.seq != point.seq:
        return LedgerProblem(point.seq, "missing or moved since it was verified")
    if entry.hash != point.hash or _recomputed(entry) != entry.hash:
        return LedgerProblem(point.seq, "changed since it was verified")
    return None


def ledger_walk(*, start: ChainPoint = GENESIS, chunk: int = 5000) -> Iterator[ChainWalk]:
    """Check the chain after `start`, in insertion order, a chunk of entries at a time.

    Yields how far it holds after each chunk; the last walk yielded has a problem or is
    complete. A caller with a budget stops reading when it is spent, and later walks
    on from the `end` it got. Entries up to `start` are trusted (only `start` itself is
    re-read): that is what makes a walk from a recent point cheap, and why only a
    walk from `GENESIS` proves that no older entry was changed.
    """
    if start != GENESIS and (problem := _anchor_problem(start)) is not None:
        yield ChainWalk(start, start, problem, complete=False)
        return
    point = start
    while True:
        batch = list(LedgerEntry.objects.filter(id__gt=point.id).order_by("id")[:chunk])
        for entry in batch:
            problem = _problem_with(entry, after=point)
            if problem is not None:
                yield ChainWalk(start, point, problem, complete=False)
                return
            point = ChainPoint(entry.pk, entry.seq, entry.hash)
        complete = len(batch) < chunk
        yield ChainWalk(start, point, None, complete=complete)
        if complete:
            return


def ledger_verify(*, chunk: int = 5000) -> LedgerVerification:
    """Walk the whole chain and name the first entry that does not hold."""
    *_, last = ledger_walk(chunk=chunk)
    return LedgerVerification(last.entries_checked, last.problem)


def ledger_tail_walk(*, start: ChainPoint, limit: int, chunk: int = 5000) -> ChainWalk:
    """The entries after `start`, checked now, at most about `limit` of them (whole
    chunks): not complete if more were left for the next full verification."""
    for walk in ledger_walk(start=start, chunk=min(chunk, limit)):
        if not walk.ok or walk.complete or walk.entries_checked >= limit:
            return walk
    raise AssertionError("a walk always ends with a problem or complete")


# --- full verifications ----------------------------------------------------------------

# Entries the ledger page re-hashes at most (about 0.1 s); more appended since the last
# intact full verification are left to the next one, and the page says so.
PAGE_CHECK_LIMIT = 5000


@dataclass(frozen=True)
class LedgerStatus:
    """What the ledger page says about the chain, without re-hashing all of it."""

    newest_seq: int
    last_finished: VerificationRun | None  # the newest full verification done, whatever it found
    last_intact: VerificationRun | None  # the newest that found the chain intact
    running: VerificationRun | None
    recent: list[VerificationRun]
    # The entries after the last intact run's end (all, if none), checked now.
    since: ChainWalk

    @property
    def broken(self) -> bool:
        last_broken = (
            self.last_finished is not None
            and self.last_finished.status == VerificationRun.Status.BROKEN
        )
        return last_broken or not self.since.ok

    @property
    def left_unchecked(self) -> int:
        """Entries appended since the last intact run that the page did not get to."""
        if self.since.complete or not self.since.ok:
            return 0
        return self.newest_seq - self.since.end.seq

    @property
    def whole_chain_checked_now(self) -> bool:
        """No full verification to lean on, and the page's walk covered the chain."""
        return self.since.start == GENESIS and self.since.complete


def ledger_status(*, limit: int | None = None) -> LedgerStatus:
    runs = VerificationRun.objects
    last_intact = verification_run_last_intact()
    last_finished = _standing(last_intact)
    start = (
        ChainPoint(last_intact.through_id, last_intact.through_seq, last_intact.through_hash)
        if last_intact is not None
        else GENESIS
    )
    return LedgerStatus(
        newest_seq=LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0,
        last_finished=last_finished,
        last_intact=last_intact,
        running=runs.filter(status=VerificationRun.Status.RUNNING).order_by("requested_at").first(),
        recent=verification_runs_recent(),
        since=ledger_tail_walk(start=start, limit=limit or PAGE_CHECK_LIMIT),
    )


def verification_runs_recent(*, limit: int = 10) -> list[VerificationRun]:
    return list(VerificationRun.objects.order_by("-requested_at", "-id")[:limit])


def verification_run_last_intact() -> VerificationRun | None:
    """The full verification that found the chain intact and was asked for last (its
    walk started last, so it saw the latest state): its end is the point the ledger
    page checks on from."""
    return (
        VerificationRun.objects.filter(status=VerificationRun.Status.INTACT)
        .order_by("-requested_at", "-id")
        .first()
    )


def verification_run_standing() -> VerificationRun | None:
    """The full verification whose finding stands (the page's verdict, the broken
    metric). A broken finding stands until an intact run asked for after it finished:
    runs overlap, and one that started earlier may have passed an entry before it was
    edited; finishing later, it must not clear the alarm."""
    return _standing(verification_run_last_intact())


def _standing(last_intact: VerificationRun | None) -> VerificationRun | None:
    broken = VerificationRun.objects.filter(status=VerificationRun.Status.BROKEN)
    if last_intact is not None:
        broken = broken.filter(finished_at__gt=last_intact.requested_at)
    return broken.order_by("-finished_at", "-id").first() or last_intact
