"""The storage sweep never makes a mass change on its own: a storage or a database that is
not the right one (an unmounted MEDIA_ROOT, an empty database) would make every artefact
"missing" or every file an "orphan"; over the limit it changes nothing of that kind,
says so, and lets one run through only when an operator asks."""

import logging
import os
from datetime import timedelta

import pytest
from auditlog.models import LogEntry
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from compliance.ledger.models import LedgerEntry
from compliance.recordings.models import Artefact
from compliance.retention import storage_sweep
from tests.factories import ArtefactFactory
from tests.retention.conftest import stored_files

pytestmark = pytest.mark.django_db

LATER = timedelta(hours=2)  # past the grace period of every file saved now


@pytest.fixture
def limits(settings):
    """Small limits, so that a mass change takes a few rows: the floor and the share."""

    def set_limits(*, floor: int, share: float = 0.01) -> None:
        settings.STORAGE_SWEEP_MAX_CHANGE_FLOOR = floor
        settings.STORAGE_SWEEP_MAX_CHANGE_SHARE = share

    return set_limits


def _artefacts_without_files(n: int, *, start: int = 0) -> list[int]:
    return [
        ArtefactFactory(storage_key=f"audio/2026/01/gone-{i}.wav").pk
        for i in range(start, start + n)
    ]


def _artefacts_with_files(n: int) -> list[int]:
    return [
        ArtefactFactory(
            storage_key=default_storage.save(f"audio/2026/01/kept-{i}.wav", ContentFile(b"x"))
        ).pk
        for i in range(n)
    ]


def _files(n: int, *, name: str = "orphan", old: bool = False) -> list[str]:
    keys = [
        default_storage.save(f"audio/2026/01/{name}-{i}.wav", ContentFile(b"x")) for i in range(n)
    ]
    if old:
        then = timezone.now().timestamp() - 7200
        for key in keys:
            os.utime(default_storage.path(key), (then, then))
    return keys


def _active(pks: list[int]) -> int:
    return Artefact.objects.filter(pk__in=pks, state="active").count()


def _kinds() -> list[str]:
    return list(LedgerEntry.objects.values_list("kind", flat=True))


def _metric(name: str) -> float:
    body = Client().get("/metrics").content.decode()
    line = next(line for line in body.splitlines() if line.startswith(f"{name} "))
    return float(line.split()[1])


def test_the_limit_is_one_percent_of_what_was_checked_but_never_below_100():
    assert (settings.STORAGE_SWEEP_MAX_CHANGE_FLOOR, settings.STORAGE_SWEEP_MAX_CHANGE_SHARE) == (
        100,
        0.01,
    )
    assert storage_sweep.mass_change_limit(0) == 100
    assert storage_sweep.mass_change_limit(10_000) == 100
    assert storage_sweep.mass_change_limit(25_050) == 250
    assert storage_sweep.mass_change_limit(10_000_000) == 100_000


def test_an_empty_storage_under_many_active_artefacts_tombstones_nothing(caplog):
    """An unmounted MEDIA_ROOT: not one of the artefacts' files is there."""
    gone = _artefacts_without_files(101)

    with caplog.at_level(logging.ERROR, logger="compliance.retention.storage_sweep"):
        result = storage_sweep.storage_sweep()

    assert _active(gone) == 101
    assert (result.rows_checked, result.rows_found_without_file, result.rows_limit) == (
        101,
        101,
        100,
    )
    assert (result.rows_without_file, result.rows_refused, result.orphans_refused) == (
        0,
        True,
        False,
    )
    assert result.refused
    assert _kinds() == ["storage.sweep_refused"]
    entry = LedgerEntry.objects.get(kind="storage.sweep_refused")
    assert entry.payload == {
        "files_checked": 0,
        "orphan_files_found": 0,
        "orphan_limit": 100,
        "orphans_refused": False,
        "orphan_files_deleted": 0,
        "rows_checked": 101,
        "rows_found_without_file": 101,
        "rows_limit": 100,
        "rows_refused": True,
    }
    [record] = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert "storage.sweep_refused" in record.getMessage()
    assert "rows_without_file=101 of 101 artefacts (limit 100)" in record.getMessage()
    assert _metric("earshot_storage_sweep_refusals_total") == 1.0
    assert _metric("earshot_storage_sweep_refused_rows_without_file") == 101.0
    assert _metric("earshot_storage_sweep_refused_orphan_files") == 0.0
    assert (
        _metric("earshot_storage_sweep_refused_timestamp_seconds") == entry.created_at.timestamp()
    )


def test_a_database_without_artefacts_deletes_none_of_the_old_files(limits):
    """A DATABASE_URL naming an empty database: every stored file looks like an orphan."""
    limits(floor=10)
    files = _files(11)

    result = storage_sweep.storage_sweep(now=timezone.now() + LATER)

    assert set(files) <= stored_files(settings.MEDIA_ROOT)
    assert (result.files_checked, result.orphan_files_found, result.orphan_limit) == (11, 11, 10)
    assert (result.orphan_files_deleted, result.orphans_refused, result.rows_refused) == (
        0,
        True,
        False,
    )
    assert _kinds() == ["storage.sweep_refused"]
    assert LedgerEntry.objects.get().payload["orphans_refused"] is True
    assert _metric("earshot_storage_sweep_refused_orphan_files") == 11.0
    assert _metric("earshot_storage_sweep_refusals_total") == 1.0


def test_no_refusal_shows_on_the_metrics_as_zero():
    assert _metric("earshot_storage_sweep_refusals_total") == 0.0
    assert _metric("earshot_storage_sweep_refused_timestamp_seconds") == 0.0


def test_at_the_limit_the_sweep_settles_as_before_and_one_more_changes_nothing(limits):
    limits(floor=10)
    kept = _artefacts_with_files(3)
    gone = _artefacts_without_files(10)
    orphans = _files(10)

    result = storage_sweep.storage_sweep(now=timezone.now() + LATER)

    assert (result.orphan_files_deleted, result.rows_without_file) == (10, 10)
    assert not result.refused
    assert stored_files(settings.MEDIA_ROOT).isdisjoint(orphans)
    assert _active(kept) == 3 and _active(gone) == 0
    assert _kinds() == ["storage.swept"]

    more_gone = _artefacts_without_files(11, start=10)
    more_orphans = _files(11, name="more")

    again = storage_sweep.storage_sweep(now=timezone.now() + LATER)

    assert (again.orphan_files_found, again.rows_found_without_file) == (11, 11)
    assert (again.orphan_files_deleted, again.rows_without_file) == (0, 0)
    assert set(more_orphans) <= stored_files(settings.MEDIA_ROOT)
    assert _active(more_gone) == 11
    assert _kinds() == ["storage.swept", "storage.sweep_refused"]


def test_one_kind_over_its_limit_leaves_the_other_within_its_limit_to_be_settled(limits):
    limits(floor=5)
    gone = _artefacts_without_files(2)
    orphans = _files(6)

    result = storage_sweep.storage_sweep(now=timezone.now() + LATER)

    assert (result.orphans_refused, result.rows_refused) == (True, False)
    assert set(orphans) <= stored_files(settings.MEDIA_ROOT)
    assert _active(gone) == 0
    # the sweep's entry and its refusal, ledger last in the tombstones' transaction
    assert _kinds() == ["storage.swept", "storage.sweep_refused"]
    assert LedgerEntry.objects.get(kind="storage.swept").payload["rows_without_file"] == 2


def test_the_floor_decides_when_few_were_checked(limits):
    files = _files(5, old=True)  # every file an orphan: 100% of what was checked

    limits(floor=4)
    refused = storage_sweep.storage_sweep()
    assert (refused.orphans_refused, refused.orphan_files_deleted) == (True, 0)
    assert set(files) <= stored_files(settings.MEDIA_ROOT)

    limits(floor=5)
    settled = storage_sweep.storage_sweep()
    assert (settled.orphans_refused, settled.orphan_files_deleted) == (False, 5)
    assert stored_files(settings.MEDIA_ROOT).isdisjoint(files)


def test_the_share_decides_above_the_floor_for_orphans(limits):
    _files(100)  # in flight: checked, never orphans
    orphans = _files(20, name="old", old=True)

    limits(floor=10, share=0.1)  # 12 of the 120 files checked
    refused = storage_sweep.storage_sweep()
    assert (refused.files_checked, refused.orphan_limit, refused.orphan_files_deleted) == (
        120,
        12,
        0,
    )
    assert refused.orphans_refused
    assert set(orphans) <= stored_files(settings.MEDIA_ROOT)

    limits(floor=10, share=0.2)  # 24 of the 120
    settled = storage_sweep.storage_sweep()
    assert (settled.orphan_limit, settled.orphan_files_deleted) == (24, 20)
    assert stored_files(settings.MEDIA_ROOT).isdisjoint(orphans)


def test_the_share_decides_above_the_floor_for_artefacts_without_files(limits):
    _artefacts_with_files(30)
    gone = _artefacts_without_files(5)

    limits(floor=2, share=0.1)  # 3 of the 35 artefacts checked
    refused = storage_sweep.storage_sweep()
    assert (refused.rows_checked, refused.rows_limit, refused.rows_refused) == (35, 3, True)
    assert _active(gone) == 5

    limits(floor=2, share=0.2)  # 7 of the 35
    settled = storage_sweep.storage_sweep()
    assert (settled.rows_limit, settled.rows_without_file, settled.rows_refused) == (7, 5, False)
    assert _active(gone) == 0


def test_the_command_refuses_a_mass_change_and_changes_nothing(limits):
    limits(floor=3)
    gone = _artefacts_without_files(4)
    orphans = _files(4, old=True)

    with pytest.raises(CommandError, match="--allow-mass-change"):
        call_command("storage_sweep")

    assert _active(gone) == 4
    assert set(orphans) <= stored_files(settings.MEDIA_ROOT)
    assert _kinds() == ["storage.sweep_refused"]


def test_the_operators_option_lets_one_mass_change_through(limits, capsys):
    limits(floor=3)
    kept = _artefacts_with_files(2)
    gone = _artefacts_without_files(4)
    orphans = _files(4, old=True)

    call_command("storage_sweep", "--allow-mass-change")

    assert "deleted: 4" in capsys.readouterr().out
    assert _active(gone) == 0 and _active(kept) == 2
    assert stored_files(settings.MEDIA_ROOT).isdisjoint(orphans)
    assert _kinds() == ["storage.swept"]
    entry = LedgerEntry.objects.get()
    assert entry.payload["mass_change_allowed"] is True
    assert (entry.payload["orphan_files_deleted"], entry.payload["rows_without_file"]) == (4, 4)
    assert _metric("earshot_storage_sweep_refusals_total") == 0.0


def test_a_mass_change_let_through_tombstones_page_by_page_each_with_its_history(
    limits, monkeypatch
):
    """An operator's mass change may name millions of artefacts: they are held as 8-byte
    ids and tombstoned PAGE at a time, none left out and each with its history row."""
    limits(floor=1)
    monkeypatch.setattr(storage_sweep, "PAGE", 2)
    kept = _artefacts_with_files(2)
    gone = _artefacts_without_files(5)

    result = storage_sweep.storage_sweep(allow_mass_change=True)

    assert (result.rows_found_without_file, result.rows_without_file) == (5, 5)
    assert _active(gone) == 0 and _active(kept) == 2
    histories = LogEntry.objects.get_for_objects(Artefact.objects.filter(pk__in=gone))
    assert sorted(int(pk) for pk in histories.values_list("object_pk", flat=True)) == sorted(gone)
    entry = LedgerEntry.objects.get(kind="storage.swept")
    assert sorted(entry.payload["artefacts"]) == sorted(gone)
    assert entry.payload["mass_change_allowed"] is True


def test_more_orphans_than_are_held_are_found_again_and_deleted_within_the_limit(
    limits, monkeypatch
):
    limits(floor=10)
    monkeypatch.setattr(storage_sweep, "ORPHANS_HELD", 3)
    monkeypatch.setattr(storage_sweep, "PAGE", 2)
    kept = _artefacts_with_files(3)
    orphans = _files(7, old=True)

    result = storage_sweep.storage_sweep()

    assert (result.orphan_files_found, result.orphan_files_deleted) == (7, 7)
    assert not result.refused
    assert stored_files(settings.MEDIA_ROOT).isdisjoint(orphans)
    assert _active(kept) == 3


def test_orphans_appearing_between_the_two_listings_stop_the_second_at_the_limit(
    limits, monkeypatch
):
    """The first listing found few enough; by the second the storage or the database
    changed: it deletes no more than the limit."""
    limits(floor=5)
    monkeypatch.setattr(storage_sweep, "ORPHANS_HELD", 1)
    monkeypatch.setattr(storage_sweep, "PAGE", 2)
    _files(4, old=True)
    find = storage_sweep._find_orphans

    def then_more_appear(*args, **kwargs):
        found = find(*args, **kwargs)
        _files(4, name="later", old=True)
        return found

    monkeypatch.setattr(storage_sweep, "_find_orphans", then_more_appear)

    result = storage_sweep.storage_sweep()

    assert result.orphan_files_found == 4
    assert result.orphans_refused
    assert result.orphan_files_deleted <= 5
    assert len(stored_files(settings.MEDIA_ROOT)) == 8 - result.orphan_files_deleted
    assert _kinds() == ["storage.swept", "storage.sweep_refused"]


def test_a_held_orphan_named_by_an_artefact_before_its_deletion_is_kept(monkeypatch):
    """The held keys are looked up again just before they are deleted."""
    [key] = _files(1, old=True)
    find = storage_sweep._find_orphans

    def then_registered(*args, **kwargs):
        found = find(*args, **kwargs)
        ArtefactFactory(storage_key=key)
        return found

    monkeypatch.setattr(storage_sweep, "_find_orphans", then_registered)

    result = storage_sweep.storage_sweep()

    assert (result.orphan_files_found, result.orphan_files_deleted) == (1, 0)
    assert key in stored_files(settings.MEDIA_ROOT)
