"""What the purge's finish needs from the apps above retention.

A purge (the batch purge's finish, a deletion request's) tombstones recordings
(`tombstones.py`), and no review item of a tombstoned recording may stay open: they
are revoked in the same transaction (docs/invariants.md). Review
items belong to sampling, a floor above retention, which retention must not import
(docs/architecture.md, "Which app may import which"). So retention owns this small
interface and sampling registers its revocation in it when the app is ready
(`compliance/sampling/apps.py`).

A purge that tombstones recordings while nothing is registered raises instead of
leaving items open: a wiring fault must not pass as a purge that revoked nothing.
"""

from collections.abc import Callable

from django.core.exceptions import ImproperlyConfigured

RecordingsRevoker = Callable[..., int]  # (*, recording_ids: list[int], reason: str) -> count

_revokers: list[RecordingsRevoker] = []


def on_recordings_tombstoned(revoker: RecordingsRevoker) -> None:
    """Register `revoker(recording_ids=..., reason=...)`, called by every purge finish
    inside its transaction with the recordings it tombstoned. Registering it twice
    registers it once."""
    if revoker not in _revokers:
        _revokers.append(revoker)


def recordings_tombstoned(*, recording_ids: list[int], reason: str) -> int:
    """Tell the registered apps that these recordings are tombstones now; how many
    items they revoked."""
    if not recording_ids:
        return 0
    if not _revokers:
        raise ImproperlyConfigured(
            "No revocation is registered for tombstoned recordings (the sampling app "
            "registers one when it is ready): the purge would leave review items open."
        )
    return sum(revoke(recording_ids=recording_ids, reason=reason) for revoke in _revokers)
