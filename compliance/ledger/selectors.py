"""Reading the ledger: verifying its chain, whole or from a verified point on, holding it
against the reference (what earlier full verifications verified, or an officer
accepted), and what the full verifications found."""

import base64
from collections.abc import Iterator
from dataclasses import dataclass

from earshot_verify.merkle import hash_leaf
from earshot_verify.merkle import root_from_leaf_hashes as parts_root_of

from .canonical import NotCanonical, entry_hash
from .models import (
    GENESIS_HASH,
    LedgerAcknowledgement,
    LedgerEntry,
    LedgerEntryPart,
    VerificationRun,
)


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
    try:
        return _recomputed_or_raise(entry)
    except NotCanonical:
        return ""  # a value no append could have written: edited


def _recomputed_or_raise(entry: LedgerEntry) -> str:
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


def _parts_problems(batch: list[LedgerEntry]) -> dict[int, LedgerProblem]:
    """What is wrong with the stored parts of the entries in `batch` that cover many
    profiles (compliance/ledger/parts.py): each part must hash to its stored leaf
    hash, and together, in index order, to the `parts_root` the entry's hash covers.
    One query per chunk of entries, for the few that have parts."""
    roots = {
        e.seq: (e.payload.get("parts_root"), e.payload.get("parts"))
        for e in batch
        if isinstance(e.payload, dict) and "parts_root" in e.payload
    }
    if not roots:
        return {}
    stored: dict[int, list[tuple[int, bytes, bytes]]] = {seq: [] for seq in roots}
    rows = (
        LedgerEntryPart.objects.filter(seq__in=list(roots))
        .order_by("seq", "index")
        .values_list("seq", "index", "part", "leaf_hash")
    )
    for seq, index, part, hash_ in rows:
        stored[seq].append((index, bytes(part), bytes(hash_)))
    problems = {}
    for seq, (root, count) in roots.items():
        parts = stored[seq]
        if [index for index, _, _ in parts] != list(range(len(parts))) or len(parts) != count:
            problems[seq] = LedgerProblem(seq, "its parts are missing or out of order (removed)")
        elif any(hash_leaf(part) != hash_ for _, part, hash_ in parts) or (
            base64.b64encode(parts_root_of([hash_ for _, _, hash_ in parts])).decode() != root
        ):
            problems[seq] = LedgerProblem(seq, "its parts do not match its parts_root (edited)")
    return problems


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
        parts = _parts_problems(batch)
        for entry in batch:
            problem = _problem_with(entry, after=point) or parts.get(entry.seq)
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


# --- the reference ----------------------------------------------------------------------


@dataclass(frozen=True)
class LedgerReference:
    """The point of the chain that a full verification must find again: the end of the
    intact run that verified furthest since the last acknowledgement, or, if none has
    since, the acknowledgement's own entry.

    A walk from the first entry proves the chain consistent, not complete: deleting
    the newest entries, or rewriting one and re-hashing everything after it, leaves
    a chain that links. Held against the reference, the shorter chain lacks the
    reference's entry, and the re-forged one gives it another hash.
    """

    point: ChainPoint
    run: VerificationRun | None
    acknowledgement: LedgerAcknowledgement | None

    @property
    def source(self) -> str:
        if self.run is not None:
            return f"verified by run #{self.run.pk}"
        assert self.acknowledgement is not None
        return f"accepted by acknowledgement #{self.acknowledgement.pk}"


def ledger_acknowledgement_last() -> LedgerAcknowledgement | None:
    return LedgerAcknowledgement.objects.order_by("-id").first()


def ledger_reference() -> LedgerReference | None:
    """What the chain is held against now; None before any intact run or acknowledgement.

    The runs before the last acknowledgement no longer count: what it accepted (a
    shortened chain, say) would fail against them for ever. Row ids only grow, so a run
    that verified past the acknowledgement's entry is one that came after it.
    """
    acknowledgement = ledger_acknowledgement_last()
    intact = VerificationRun.objects.filter(status=VerificationRun.Status.INTACT)
    if acknowledgement is not None:
        intact = intact.filter(through_id__gte=acknowledgement.through_id)
    run = intact.order_by("-through_id", "-id").first()
    if run is not None:
        point = ChainPoint(run.through_id, run.through_seq, run.through_hash)
        return LedgerReference(point, run, acknowledgement)
    if acknowledgement is not None:
        point = ChainPoint(
            acknowledgement.through_id, acknowledgement.through_seq, acknowledgement.through_hash
        )
        return LedgerReference(point, None, acknowledgement)
    return None


def ledger_reference_problem(
    *, end: ChainPoint, reference: LedgerReference | None
) -> LedgerProblem | None:
    """What a chain that holds from its first entry to `end` lacks of the reference.

    Fewer entries than the reference verified is a removal from the end; another hash
    at the reference's entry is a rewrite, re-hashed onwards so that the chain links.
    """
    if reference is None or reference.point.seq == 0:
        return None
    expected = reference.point
    if end.seq < expected.seq:
        return LedgerProblem(
            end.seq + 1,
            f"missing: expected at least {expected.seq} entries, up to #{expected.seq} with "
            f"hash {expected.hash} ({reference.source}); the chain ends at #{end.seq}",
        )
    found: str | None
    if end.seq == expected.seq:
        found = end.hash
    else:
        found = LedgerEntry.objects.filter(seq=expected.seq).values_list("hash", flat=True).first()
    if found != expected.hash:
        return LedgerProblem(
            expected.seq,
            f"rewritten: expected #{expected.seq} with hash {expected.hash} "
            f"({reference.source}), found hash {found}",
        )
    return None


# --- full verifications ----------------------------------------------------------------

# Entries the ledger page re-hashes at most; more appended since the reference are left
# to the next full verification, and the page says so.
PAGE_CHECK_LIMIT = 5000


@dataclass(frozen=True)
class LedgerStatus:
    """What the ledger page says about the chain, without re-hashing all of it."""

    newest_seq: int
    # The broken finding that stands (not acknowledged yet), else the reference's run.
    last_finished: VerificationRun | None
    last_intact: VerificationRun | None  # the reference's run, if the reference is a run
    reference: LedgerReference | None
    acknowledged: LedgerAcknowledgement | None  # the last acknowledgement
    running: VerificationRun | None
    recent: list[VerificationRun]
    # The entries after the reference (all, if none), checked now.
    since: ChainWalk

    @property
    def unacknowledged(self) -> VerificationRun | None:
        """The broken finding an officer has to acknowledge, if any."""
        last = self.last_finished
        return last if last is not None and last.status == VerificationRun.Status.BROKEN else None

    @property
    def broken(self) -> bool:
        return self.unacknowledged is not None or not self.since.ok

    @property
    def left_unchecked(self) -> int:
        """Entries appended since the reference that the page did not get to."""
        if self.since.complete or not self.since.ok:
            return 0
        return self.newest_seq - self.since.end.seq

    @property
    def whole_chain_checked_now(self) -> bool:
        """No full verification to lean on, and the page's walk covered the chain."""
        return self.since.start == GENESIS and self.since.complete


def ledger_status(*, limit: int | None = None) -> LedgerStatus:
    runs = VerificationRun.objects
    reference = ledger_reference()
    last_intact = reference.run if reference is not None else None
    return LedgerStatus(
        newest_seq=LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True).first() or 0,
        last_finished=verification_run_unacknowledged() or last_intact,
        last_intact=last_intact,
        reference=reference,
        acknowledged=reference.acknowledgement
        if reference is not None
        else ledger_acknowledgement_last(),
        running=runs.filter(status=VerificationRun.Status.RUNNING).order_by("requested_at").first(),
        recent=verification_runs_recent(),
        since=ledger_tail_walk(
            start=reference.point if reference is not None else GENESIS,
            limit=limit or PAGE_CHECK_LIMIT,
        ),
    )


def verification_runs_recent(*, limit: int = 10) -> list[VerificationRun]:
    return list(
        VerificationRun.objects.select_related("acknowledgement").order_by("-requested_at", "-id")[
            :limit
        ]
    )


def verification_run_unacknowledged() -> VerificationRun | None:
    """The newest full verification that found the chain broken and whose finding no
    officer has acknowledged: it stands (on the page, in the metric, in `verify_ledger`)
    whatever later runs find. Runs overlap, and a later one may find a chain intact
    that is not (a shortened one, or one restored with the edit still unexplained)."""
    return (
        VerificationRun.objects.filter(
            status=VerificationRun.Status.BROKEN, acknowledgement__isnull=True
        )
        .order_by("-finished_at", "-id")
        .first()
    )
