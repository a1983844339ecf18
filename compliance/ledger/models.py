from django.db import models


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
