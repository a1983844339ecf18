from django.db.models import QuerySet

from compliance.core.errors import NotFound
from compliance.edge.callers import Caller, visible_rows

from .models import Recording


def recordings_visible_to(caller: Caller, *, scope: str) -> QuerySet[Recording]:
    """The recordings `caller` may see (the API and the privacy page ask it)."""
    return visible_rows(
        Recording.objects.select_related("profile__account"),
        caller,
        scope=scope,
        owner="profile__account__user_id",
    )


def recording_for_caller(*, caller: Caller, external_id: str, scope: str) -> Recording:
    """The recording if `caller` may read it; everyone else is told it does not exist."""
    recording = (
        recordings_visible_to(caller, scope=scope)
        .prefetch_related("artefacts")
        .filter(external_id=external_id)
        .first()
    )
    if recording is None:
        raise NotFound("Recording")
    return recording
