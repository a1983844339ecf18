from django.apps import AppConfig


class SamplingConfig(AppConfig):
    name = "compliance.sampling"
    label = "sampling"

    def ready(self) -> None:
        # The purge (retention, a floor below) revokes the open items of the recordings
        # it tombstones through this hook, in its finish's transaction.
        from compliance.retention.hooks import on_recordings_tombstoned

        from .services import review_items_revoke_for_recordings

        on_recordings_tombstoned(review_items_revoke_for_recordings)
