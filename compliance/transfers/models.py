from django.db import models


class TransferRule(models.Model):
    """Reviewers at `reviewer_location` may review recordings of `jurisdiction`.

    Without a rule, only reviewers in the recording's own jurisdiction may.
    """

    jurisdiction = models.CharField(max_length=2)
    reviewer_location = models.CharField(max_length=2)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.CharField(max_length=200, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["jurisdiction", "reviewer_location"], name="transferrule_one_per_pair"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.jurisdiction} -> {self.reviewer_location}"
