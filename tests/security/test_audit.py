"""Field-level history: auditlog for saves and deletes, audit_bulk_change for the bulk
updates auditlog cannot see, in the same transaction as the change."""

import pytest
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import transaction

from compliance.accounts.models import Account, Profile
from compliance.accounts.services import profile_retention_set
from compliance.clients.models import ServiceClient
from compliance.clients.services import service_client_create
from compliance.consent.models import ConsentDefault
from compliance.recordings.models import Artefact, Recording
from compliance.retention import purge
from compliance.retention.models import LegalHold, RetentionPolicy
from compliance.retention.services import (
    legal_hold_place,
    legal_hold_release,
    retention_policies_apply,
    retention_policy_create,
)
from compliance.security.audit import audit_bulk_change
from compliance.transfers.models import TransferRule
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


def test_a_purge_leaves_each_tombstoned_artefact_and_recording_in_the_history(ingest):
    _policy(10)
    _policy(10, category="transcript")
    recording = ingest(days_ago=11)
    untouched = ingest(days_ago=1)

    run = purge.purge_expired()

    assert (run.purged, run.recordings_purged) == (2, 1)
    for artefact in Artefact.objects.filter(recording=recording):
        [entry] = [e for e in history(artefact) if e.action == LogEntry.Action.UPDATE]
        assert entry.changes_dict["state"] == ["purging", "purged"]
        assert entry.changes_dict["purge_reason"] == ["", "retention_policy"]
        assert entry.additional_data["actor"] == "purge"
        assert "turn on the lights" not in str(entry.changes)  # no content in the history
    [entry] = history(recording)
    assert entry.changes_dict["state"] == ["active", "purged"]
    assert not history(untouched)
    for artefact in Artefact.objects.filter(recording=untouched):
        assert not history(artefact)


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

    audio = recording.artefacts.get(category="audio")
    assert len([e for e in history(audio) if e.action == LogEntry.Action.UPDATE]) == 1


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
