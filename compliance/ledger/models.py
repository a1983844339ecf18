from django.db import models
from django.db.models import Q

# The `prev_hash` of the first entry.
GENESIS_HASH = "0" * 64
# pg_advisory_xact_lock key that serialises appends (and a recovery's re-import); any
# constant unique to this lock.
APPEND_LOCK_KEY = 0x4541_5253_484F_54  # "EARSHOT"


class LedgerEntry(models.Model):
    """One link of the append-only, hash-chained evidence log.

    `seq` is dense (1, 2, 3, ...) because it is assigned under the append lock, so a
    removed entry leaves a gap that verification sees even if the chain is re-forged
    after it. On PostgreSQL a trigger refuses UPDATE and DELETE.
    """

    seq = models.BigIntegerField(unique=True)
    created_at = models.DateTimeField()
    kind = models.CharField(max_length=64)
    subject = models.CharField(max_length=200, blank=True)
    actor = models.CharField(max_length=200, blank=True)
    payload = models.JSONField(default=dict)
    prev_hash = models.CharField(max_length=64)
    hash = models.CharField(max_length=64, unique=True)
    # The entry's canonical encoding (RFC 8785 JSON of the fields above but `hash`),
    # stored as written and never re-encoded: `hash` is its SHA-256, and it is the
    # entry's leaf in the Merkle tree that checkpoints sign.
    leaf = models.BinaryField()
    # SHA-256(0x00 || leaf), the leaf's hash in the tree (RFC 9162).
    leaf_hash = models.BinaryField(max_length=32)

    class Meta:
        ordering = ["seq"]
        verbose_name_plural = "ledger entries"
        indexes = [
            # The officers' ledger page filters by what happened and to whom.
            models.Index(fields=["kind", "seq"], name="ledger_kind_seq"),
            models.Index(fields=["subject", "seq"], name="ledger_subject_seq"),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} {self.kind} {self.subject}"


class LedgerAcknowledgement(models.Model):
    """An officer's acknowledgement of what full verifications found broken: who, when
    and why, and the ledger entry that records it.

    A broken finding stands until it is acknowledged; later runs that find the chain
    intact do not clear it, since a run from the first entry would call a shortened
    chain intact. The acknowledgement also moves the reference: later runs are held
    against the chain as it stood when the officer acknowledged (its newest entry being
    the acknowledgement's own), no longer against the runs before it.
    """

    acknowledged_by = models.CharField(max_length=200)
    acknowledged_at = models.DateTimeField()
    reason = models.TextField()
    # The entry that records this acknowledgement: row id, number, hash.
    through_id = models.BigIntegerField(default=0)
    through_seq = models.BigIntegerField(default=0)
    through_hash = models.CharField(max_length=64, default=GENESIS_HASH)

    def __str__(self) -> str:
        return f"ledger acknowledgement #{self.pk} by {self.acknowledged_by}"


class VerificationRun(models.Model):
    """One full verification of the chain, from its first entry to its newest: who
    asked, how far it has got, what it found. The rows are the history the ledger page
    shows; the newest intact run's end is the point the page checks on from.

    A run goes in steps (a Celery task re-queues itself; `verify_ledger` runs the steps
    in-process) and commits its progress after every chunk of entries, so a worker that
    dies loses at most a chunk: once its lease lapses, the sweep resumes the run where
    it stopped. Each step claims the run by a conditional UPDATE that raises `attempts`;
    a stale worker's writes, fenced by its attempt number, change nothing.
    """

    class Status(models.TextChoices):
        RUNNING = "running"
        INTACT = "intact"
        BROKEN = "broken"

    requested_by = models.CharField(max_length=200)
    requested_at = models.DateTimeField()
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    # Verified so far: entries 1..through_seq hold; the last is row through_id, hashing to
    # through_hash. Where a run resumes, and once intact, where the page checks on from.
    through_id = models.BigIntegerField(default=0)
    through_seq = models.BigIntegerField(default=0)
    through_hash = models.CharField(max_length=64, default=GENESIS_HASH)
    problem_seq = models.BigIntegerField(null=True, blank=True)
    problem = models.CharField(max_length=500, blank=True)
    # Set on a broken run once an officer has acknowledged its finding; until then the
    # finding stands on the page, in the metric and in `verify_ledger`.
    acknowledgement = models.ForeignKey(
        LedgerAcknowledgement,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="runs",
    )
    lease_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status="running", finished_at__isnull=True)
                | (~Q(status="running") & Q(finished_at__isnull=False)),
                name="ledger_run_finished_iff_not_running",
            ),
            models.CheckConstraint(
                condition=Q(status="broken", problem_seq__isnull=False)
                | (~Q(status="broken") & Q(problem_seq__isnull=True)),
                name="ledger_run_problem_iff_broken",
            ),
            models.CheckConstraint(
                condition=Q(acknowledgement__isnull=True) | Q(status="broken"),
                name="ledger_run_acknowledged_only_if_broken",
            ),
        ]
        indexes = [
            # the page's newest intact run, and the runs still going (page, sweep)
            models.Index(fields=["status", "-finished_at"], name="ledger_run_status_finished"),
            # the page's newest finished run, whatever it found
            models.Index(fields=["-finished_at"], name="ledger_run_finished"),
            # the page's recent runs, and the sweep's "when was one last asked for"
            models.Index(fields=["-requested_at"], name="ledger_run_requested"),
            # the reference: the intact run that verified furthest into the chain
            models.Index(fields=["status", "-through_id"], name="ledger_run_status_through"),
        ]

    def __str__(self) -> str:
        return f"ledger verification #{self.pk} ({self.status})"

    @property
    def entries_checked(self) -> int:
        return self.through_seq


class LedgerTreeNode(models.Model):
    """A complete subtree of the ledger's Merkle tree: the root of leaves
    [index * 2**level, (index + 1) * 2**level). Written only by the checkpointer, never
    changed (a complete subtree's leaves never change)."""

    level = models.PositiveSmallIntegerField()
    index = models.BigIntegerField()
    hash = models.BinaryField(max_length=32)

    class Meta:
        constraints = [
            # roots and proofs read nodes by (level, index); the tree's size is the
            # highest index at level 0
            models.UniqueConstraint(fields=["level", "index"], name="ledger_tree_node_unique"),
        ]

    def __str__(self) -> str:
        return f"tree node {self.level}/{self.index}"


class LedgerKey(models.Model):
    """A public key the ledger signs with, published with its use; retired keys stay,
    so that what they signed stays verifiable."""

    class Use(models.TextChoices):
        CHECKPOINT = "checkpoint"
        RECEIPT = "receipt"

    name = models.CharField(max_length=200)
    use = models.CharField(max_length=16, choices=Use.choices)
    public_key = models.BinaryField(max_length=32)
    key_hash = models.CharField(max_length=8)  # hex, as in the verifier key
    created_at = models.DateTimeField()
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["use", "public_key"], name="ledger_key_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.use} key {self.name}+{self.key_hash}"


class LedgerCheckpoint(models.Model):
    """A signed checkpoint: the tree's size and root, as a C2SP signed note. Each is
    consistent with the one before it (checked before it was signed)."""

    tree_size = models.BigIntegerField(unique=True)
    root_hash = models.BinaryField(max_length=32)
    note = models.TextField()
    key = models.ForeignKey(LedgerKey, on_delete=models.PROTECT, related_name="checkpoints")
    created_at = models.DateTimeField()

    class Meta:
        indexes = [
            # the latest checkpoint; the first covering an entry (tree_size >= seq) is
            # served by the unique index on tree_size
            models.Index(fields=["-created_at"], name="ledger_checkpoint_created"),
        ]

    def __str__(self) -> str:
        return f"checkpoint {self.tree_size}"
