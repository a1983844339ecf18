"""Ingest: recordings and their artefacts (recordings), each artefact stored with the
expiry retention gives it.

The recordings app owns the write and its one transaction (the profiles locked FOR
SHARE, the rows inserted, the ledger entry); retention's `artefacts_expiry_at` is
handed down to it and called inside that transaction, so that no artefact is stored
without its expiry and recordings imports nothing of retention.
"""

from collections.abc import Sequence

from compliance.recordings.models import Recording
from compliance.recordings.services import (
    IngestResult,
    RecordingInput,
    recording_store,
    recordings_store,
)
from compliance.retention.services import artefacts_expiry_at


def recording_create(*, data: RecordingInput, actor: str) -> Recording:
    """One recording, uploaded (`POST /api/v1/recordings`): see `recording_store`."""
    return recording_store(data=data, actor=actor, expiry=artefacts_expiry_at)


def recordings_register(
    *, items: Sequence[RecordingInput | IngestResult], actor: str
) -> list[IngestResult]:
    """Up to MAX_BATCH recordings whose audio is in storage already
    (`POST /api/v1/recordings/batch`): see `recordings_store`."""
    return recordings_store(items=items, actor=actor, expiry=artefacts_expiry_at)
