"""Field-level history: auditlog for saves and deletes, audit_bulk_change for the bulk
updates auditlog cannot see, in the same transaction as the change."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.actions.profiles import profile_retention_set
from compliance.clients.models import ServiceClient
from compliance.clients.services import service_client_create
from compliance.consent.models import ConsentDefault
from compliance.core import audit
from compliance.core.audit import audit_bulk_change
from compliance.recordings.models import Artefact, Recording
from compliance.retention import deletion_requests, purge, storage_sweep
from compliance.retention.models import LegalHold, RetentionPolicy
from compliance.retention.services import (
    legal_hold_place,
    legal_hold_release,
    retention_policies_apply,
    retention_policy_create,
)
from compliance.transfers.models import TransferRule
from tests.conftest import postgres_only
from tests.factories import (
    ConsentDefaultFactory,
    ProfileFactory,
    RecordingFactory,
    TransferRuleFactory,
)

pytestmark = pytest.mark.django_db


def history(obj) -> list[LogEntry]:
    return list(
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(obj), object_pk=str(obj.pk)
        ).order_by("timestamp", "pk")
    )


def test_the_main_models_keep_a_field_level_history():
    profile = ProfileFactory()
    default = ConsentDefaultFactory()
    rule = TransferRuleFactory()

    profile_retention_set(profile=profile, choice="3_months", actor="test")

    for model in (Account, Profile, ConsentDefault, TransferRule, RetentionPolicy, LegalHold):
        assert model in {m for m in _registered()}
    assert [e.action for e in history(profile)] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert history(profile)[-1].changes_dict["retention_choice"] == ["None", "3_months"]
    assert history(profile.account)
    assert history(default) and history(rule)


def _registered() -> list:
    from auditlog.registry import auditlog

    return auditlog.get_models()


def test_a_service_clients_history_never_holds_its_key_hash():
    client, _key = service_client_create(name="pipeline", scopes=["eligibility:read"])

    entries = history(client)

    assert entries
    assert all("key_hash" not in (e.changes_dict or {}) for e in entries)
    assert ServiceClient.objects.get().key_hash not in str([e.changes for e in entries])


def test_the_bulk_helper_writes_one_entry_per_object_in_auditlogs_format():
    recordings = RecordingFactory.create_batch(3)

    written = audit_bulk_change(
        model=Recording,
        pks=[r.pk for r in recordings],
        changes={"state": ("active", "purged"), "purged_at": (None, "2030-01-01")},
        actor="purge",
    )

    assert written == 3
    for recording in recordings:
        [entry] = history(recording)
        assert entry.action == LogEntry.Action.UPDATE
        assert entry.changes_dict == {
            "state": ["active", "purged"],
            "purged_at": ["None", "2030-01-01"],
        }
        assert entry.additional_data == {"actor": "purge", "bulk": True}
        assert entry.object_id == recording.pk


def test_the_bulk_helper_writes_nothing_for_nothing():
    assert audit_bulk_change(model=Recording, pks=[], changes={"x": (1, 2)}, actor="t") == 0
    assert not LogEntry.objects.filter(
        content_type=ContentType.objects.get_for_model(Recording)
    ).exists()


def _policy(days: int, category: str = "audio") -> None:
    retention_policy_create(
        jurisdiction="*", category=category, retention_days=days, applies_to="all", actor="t"
    )
    retention_policies_apply()


def test_a_purge_leaves_one_history_entry_per_recording_naming_what_it_purged(ingest):
    _policy(10)
    _policy(10, category="transcript")
    recording = ingest(days_ago=11)
    untouched = ingest(days_ago=1)

    run = purge.purge_expired()

    # one entry, on the recording: its tombstoning and each of its artefacts' purge
    assert (run.purged, run.recordings_purged) == (2, 1)
    [entry] = history(recording)
    assert entry.action == LogEntry.Action.UPDATE
    assert entry.changes_dict == {
        "state": ["active", "purged"],
        "purged_at": ["None", str(recording.artefacts.get(category="audio").purged_at)],
        "purge_reason": ["", "retention_policy"],
        "purge_policy": ["", recording.artefacts.get(category="audio").expiry_basis],
        "audio": ["purging", "purged"],
        "transcript": ["purging", "purged"],
    }
    assert entry.additional_data["actor"] == "purge"
    assert "turn on the lights" not in str(entry.changes)  # no content in the history
    assert entry.object_repr == f"recording {recording.pk}"
    assert not history(untouched)
    for artefact in Artefact.objects.all():  # no entry per artefact beside it
        assert not history(artefact)


def test_an_artefact_purged_before_its_recording_is_in_the_recordings_history(ingest):
    _policy(10)
    _policy(100, category="transcript")
    recording = ingest(days_ago=11)

    # when the audio expires first, and the transcript 90 days later
    purge.purge_expired()
    purge.purge_expired(now=timezone.now() + timedelta(days=90))

    # then the recording's history says each step: the audio and its reason, then the
    # transcript with the recording's own tombstoning
    first, second = history(recording)
    assert first.changes_dict == {
        "audio": ["purging", "purged"],
        "audio_purge_reason": ["", "retention_policy"],
    }
    assert second.changes_dict["state"] == ["active", "purged"]
    assert second.changes_dict["transcript"] == ["purging", "purged"]
    assert "audio" not in second.changes_dict
    assert recording.artefacts.get(category="audio").purge_reason == "retention_policy"


def test_a_purge_step_that_rolls_back_leaves_no_history(ingest, monkeypatch):
    _policy(10)
    ingest(days_ago=11)

    def fail(**kwargs):
        raise RuntimeError("ledger down")

    monkeypatch.setattr(purge, "ledger_append", fail)
    with pytest.raises(RuntimeError):
        purge.purge_expired()

    assert not LogEntry.objects.filter(
        content_type__in=[
            ContentType.objects.get_for_model(Artefact),
            ContentType.objects.get_for_model(Recording),
        ],
        action=LogEntry.Action.UPDATE,
    ).exists()


def test_a_rerun_of_a_finished_purge_writes_no_second_history(ingest):
    _policy(10)
    recording = ingest(days_ago=11)
    purge.purge_expired()

    purge.purge_expired()

    assert len([e for e in history(recording) if e.action == LogEntry.Action.UPDATE]) == 1


def test_releasing_a_hold_records_each_artefact_it_unblocks(ingest):
    _policy(10)
    profile = ProfileFactory()
    held = ingest(profile, days_ago=20)
    other = ingest(days_ago=20)
    hold = legal_hold_place(profile=profile, reason="litigation", case_reference="C-1", actor="t")
    purge.purge_expired()
    audio = held.artefacts.get(category="audio")

    with transaction.atomic():
        legal_hold_release(hold=hold, actor="user:7")

    [entry] = [e for e in history(audio) if e.changes_dict.get("purge_blocked")]
    assert entry.changes_dict["purge_blocked"] == ["True", "False"]
    assert entry.additional_data["actor"] == "user:7"
    assert not [
        e for a in other.artefacts.all() for e in history(a) if e.changes_dict.get("purge_blocked")
    ]
    assert next(e.changes_dict for e in history(hold) if e.action == LogEntry.Action.UPDATE)[
        "released_by"
    ] == ["", "user:7"]


# --- the server-side path (PostgreSQL) writes what the ORM path writes ---------------


def _entries_as_stored(model) -> list[tuple]:
    """Every column but the id, as the database holds it (text, so that SQL NULL and
    JSON null differ), in object order; then gone, for the next writer."""
    columns = [f.column for f in LogEntry._meta.concrete_fields if not f.primary_key]
    quote = connection.ops.quote_name
    select = ", ".join(f"{quote(c)}::text" for c in columns)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {select} FROM {quote(LogEntry._meta.db_table)} "  # noqa: S608 (names from _meta)
            "WHERE content_type_id = %s ORDER BY object_id, id",
            [ContentType.objects.get_for_model(model).pk],
        )
        rows = cursor.fetchall()
    LogEntry.objects.filter(content_type=ContentType.objects.get_for_model(model)).delete()
    return rows


@postgres_only()
@pytest.mark.parametrize("shape", ["pks", "queryset"])
def test_the_server_writes_the_same_audit_rows_as_the_orm(shape, settings, monkeypatch):
    settings.AUDITLOG_CID_GETTER = lambda: "req-7"
    recordings = RecordingFactory.create_batch(4)
    pks = [r.pk for r in recordings]
    arguments = {
        "model": Recording,
        "pks": Recording.objects.filter(pk__in=pks) if shape == "queryset" else pks,
        "changes": {
            "state": ("active", "purged"),
            "purged_at": (None, datetime(2030, 1, 1, 12, 30, tzinfo=UTC)),
            "sensitive": (True, False),
            "purge_policy": ("", "policy:7 'quoted' \\ ü"),
        },
        "actor": "purge",
    }

    with time_machine.travel(datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC), tick=False):
        with CaptureQueriesContext(connection) as queries:
            written = audit_bulk_change(**arguments)
        by_server = _entries_as_stored(Recording)
        monkeypatch.setattr(audit, "_on_server", lambda model, pks: False)
        assert audit_bulk_change(**arguments) == written == 4
        by_orm = _entries_as_stored(Recording)

    assert by_server == by_orm
    inserts = [q for q in queries if q["sql"].startswith("INSERT")]
    assert len(inserts) == 1  # one statement, however many objects
    if shape == "queryset":
        assert len(queries) == 1  # and the ids never came to Python


@postgres_only()
def test_the_server_path_leaves_non_integer_pks_to_the_orm():
    recording = RecordingFactory()

    assert not audit._on_server(Recording, [str(recording.pk)])
    assert audit._on_server(Recording, [recording.pk])
    assert audit_bulk_change(
        model=Recording, pks=[str(recording.pk)], changes={"state": ("a", "b")}, actor="t"
    )
    [entry] = history(recording)
    assert (entry.object_pk, entry.object_id) == (str(recording.pk), None)


def test_the_bulk_helper_takes_only_a_queryset_of_its_model():
    with pytest.raises(TypeError):
        audit_bulk_change(
            model=Recording, pks=Artefact.objects.all(), changes={"x": (1, 2)}, actor="t"
        )


@postgres_only()
def test_a_purge_writes_its_history_in_one_statement_per_kind_of_change(ingest):
    _policy(10)
    _policy(10, category="transcript")
    recordings = [ingest(days_ago=11) for _ in range(3)]

    with CaptureQueriesContext(connection) as queries:
        run = purge.purge_expired()

    assert (run.purged, run.recordings_purged) == (6, 3)
    table = LogEntry._meta.db_table
    # the three recordings changed alike (both artefacts, then the recording): one
    # statement for their three entries, never one per object
    assert len([q for q in queries if q["sql"].startswith(f'INSERT INTO "{table}"')]) == 1
    for recording in recordings:
        [entry] = history(recording)
        assert entry.changes_dict["state"] == ["active", "purged"]
        assert entry.object_repr == f"recording {recording.pk}"


def test_a_deletion_request_leaves_its_bare_recordings_in_the_history(ingest):
    from compliance.retention.services import deletion_request_create

    profile = ProfileFactory()
    bare = ingest(profile, audio=False)
    bare.artefacts.all().delete()  # registered with nothing stored: tombstoned directly
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )

    deletion_requests.deletion_request_run(public_id=request.public_id)

    [entry] = history(bare)
    assert entry.changes_dict["state"] == ["active", "purged"]
    assert entry.changes_dict["purge_reason"] == ["", "deletion_request"]
    assert entry.additional_data["actor"] == "deletion"


def test_the_storage_sweep_leaves_each_row_it_settles_in_the_history(ingest):
    from django.core.files.storage import default_storage

    lost = ingest()
    kept = ingest()
    audio = lost.artefacts.get(category="audio")
    default_storage.delete(audio.storage_key)  # a row whose file is gone

    assert storage_sweep.storage_sweep().rows_without_file == 1

    [entry] = history(audio)
    assert entry.changes_dict["state"] == ["active", "purged"]
    assert entry.changes_dict["purge_reason"] == ["", "file_missing"]
    assert entry.changes_dict["storage_key"] == ["[removed]", ""]
    assert entry.additional_data["actor"] == "sweep"
    assert not history(kept.artefacts.get(category="audio"))


def test_the_bulk_helper_writes_nothing_for_a_queryset_that_selects_nothing():
    written = audit_bulk_change(
        model=Recording, pks=Recording.objects.filter(pk__in=[]), changes={"x": (1, 2)}, actor="t"
    )
    assert written == 0
    assert not LogEntry.objects.exists()
