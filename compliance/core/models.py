from django.db import models


class IdempotencyKey(models.Model):
    """A creating request a caller sent under an `Idempotency-Key` header.

    While the request runs the row is in flight (`locked_until` set, `token` naming the
    attempt that holds it); once it answered 2xx the row keeps that answer, to replay,
    and `locked_until` is empty. An attempt that failed leaves no row.
    """

    # "client:<id>" or "user:<id>": keys are scoped to who sent them
    caller = models.CharField(max_length=64)
    key = models.CharField(max_length=255)
    # sha256 of method, path and body: a reused key with another body is refused
    fingerprint = models.CharField(max_length=64)
    created_at = models.DateTimeField()
    # a crashed attempt must not hold the key for ever: after this another may take it
    locked_until = models.DateTimeField(null=True, blank=True)
    token = models.CharField(max_length=32)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.BinaryField(null=True, blank=True)
    response_content_type = models.CharField(max_length=100, blank=True)

    class Meta:
        constraints = [
            # the in-flight detection: a second insert of the same key conflicts
            models.UniqueConstraint(fields=["caller", "key"], name="idempotency_caller_key"),
        ]
        indexes = [
            # the cleanup task's range delete of keys past their lifetime
            models.Index(fields=["created_at"], name="idempotency_created"),
        ]

    def __str__(self) -> str:
        return f"{self.caller} {self.key}"
