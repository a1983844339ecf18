from typing import Any

from compliance.clients.permissions import is_client, is_officer, require_scope
from compliance.core.errors import NotFound

from .models import Recording


def recording_for_caller(*, caller: Any, external_id: str, scope: str) -> Recording:
    """The recording if `caller` may read it: a client with `scope`, an officer, or the
    owner of its profile's account; everyone else is told it does not exist."""
    if is_client(caller):
        require_scope(caller, scope)
    recording = (
        Recording.objects.select_related("profile__account")
        .prefetch_related("artefacts")
        .filter(external_id=external_id)
        .first()
    )
    if recording is None:
        raise NotFound("Recording")
    if is_client(caller) or is_officer(caller):
        return recording
    owner_id = recording.profile.account.user_id if recording.profile else None
    if owner_id is not None and caller is not None and owner_id == caller.pk:
        return recording
    raise NotFound("Recording")
