"""LEDGER_EXPORT as an S3-compatible prefix, against a local S3 server (moto_server on
127.0.0.1): objects written once and never overwritten, S3 Object Lock when configured,
and the restore check reading the export from there."""

from datetime import UTC, datetime

import pytest

from compliance.ledger.checkpoints import (
    ledger_checkpoint_issue,
    ledger_checkpoint_problem,
    ledger_export_checkpoints,
)
from compliance.ledger.export import ExportConflict, S3Export, export_store
from compliance.ledger.models import LedgerCheckpoint
from compliance.ledger.restore import BEHIND, OK, ledger_export_state
from tests.conftest import postgres_only
from tests.ledger.conftest import append

boto3 = pytest.importorskip("boto3")

pytestmark = [pytest.mark.django_db, postgres_only()]

BUCKET = "earshot-ledger"


@pytest.fixture
def s3(s3_server, settings, monkeypatch, request):
    """A new bucket with Object Lock enabled, LEDGER_EXPORT a prefix in it."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    settings.AWS_S3_ENDPOINT_URL = s3_server
    settings.AWS_S3_REGION_NAME = "us-east-1"
    client = boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1")
    bucket = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
    settings.LEDGER_EXPORT = f"s3://{bucket}/ledger/"
    settings.LEDGER_EXPORT_OBJECT_LOCK_MODE = ""
    return client, bucket


def test_checkpoints_and_leaves_are_published_to_the_s3_prefix(s3):
    client, bucket = s3
    append(5)

    checkpoint = ledger_checkpoint_issue()

    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == [f"ledger/checkpoints/{5:020d}", f"ledger/entries/{1:020d}-{5:020d}"]
    assert ledger_export_checkpoints() == [checkpoint.note]
    assert ledger_checkpoint_problem() is None
    assert isinstance(export_store(), S3Export)


def test_an_existing_object_is_never_overwritten(s3):
    client, bucket = s3
    key = f"ledger/checkpoints/{3:020d}"
    client.put_object(Bucket=bucket, Key=key, Body=b"someone else's bytes\n")
    append(3)

    with pytest.raises(ExportConflict):
        ledger_checkpoint_issue()

    assert client.get_object(Bucket=bucket, Key=key)["Body"].read() == b"someone else's bytes\n"
    assert not LedgerCheckpoint.objects.exists()
    store = export_store()
    store.write_once("entries/x", b"one")
    store.write_once("entries/x", b"one")  # the same bytes again: nothing to do
    with pytest.raises(ExportConflict):
        store.write_once("entries/x", b"two")
    assert store.read("entries/x") == b"one"


def test_objects_are_put_under_object_lock_in_compliance_mode_when_configured(s3, settings):
    client, bucket = s3
    settings.LEDGER_EXPORT_OBJECT_LOCK_MODE = "COMPLIANCE"
    settings.LEDGER_EXPORT_OBJECT_LOCK_DAYS = 30
    append(2)

    ledger_checkpoint_issue()

    head = client.head_object(Bucket=bucket, Key=f"ledger/checkpoints/{2:020d}")
    assert head["ObjectLockMode"] == "COMPLIANCE"
    assert (head["ObjectLockRetainUntilDate"] - datetime.now(UTC)).days >= 29


def test_a_database_behind_its_s3_export_is_found_and_recovered(s3):
    from django.core.management import call_command

    from tests.ledger.conftest import delete_newest

    append(3)
    ledger_checkpoint_issue()
    append(2)
    newer = ledger_checkpoint_issue()
    # what a restore of the backup taken at 3 entries leaves
    delete_newest(2)
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()

    assert ledger_export_state(fresh=True).status == BEHIND
    call_command("ledger_recover")

    assert ledger_export_state(fresh=True).status == OK
    assert LedgerCheckpoint.objects.order_by("-tree_size").first().note == newer.note
    assert ledger_checkpoint_problem() is None


def test_a_recovery_from_the_s3_export_re_imports_the_parts_too(s3):
    """The parts are exported to the prefix beside the entries, and come back from it."""
    from django.core.management import call_command

    from compliance.ledger.models import LedgerEntryPart
    from tests.ledger.conftest import append_with_parts, delete_newest, delete_parts_after

    client, bucket = s3
    append(2)
    ledger_checkpoint_issue()
    append_with_parts(3)
    append_with_parts(2)
    newer = ledger_checkpoint_issue()
    keys = sorted(o["Key"] for o in client.list_objects_v2(Bucket=bucket)["Contents"])
    assert f"ledger/parts/{3:020d}-{4:020d}" in keys
    parts = {
        (seq, index): bytes(part)
        for seq, index, part in LedgerEntryPart.objects.values_list("seq", "index", "part")
    }
    assert len(parts) == 5
    # what a restore of the backup taken at 2 entries leaves
    delete_newest(2)
    delete_parts_after(2)
    LedgerCheckpoint.objects.filter(pk=newer.pk).delete()

    assert ledger_export_state(fresh=True).status == BEHIND
    call_command("ledger_recover")

    assert ledger_export_state(fresh=True).status == OK
    assert {
        (seq, index): bytes(part)
        for seq, index, part in LedgerEntryPart.objects.values_list("seq", "index", "part")
    } == parts
    assert ledger_checkpoint_problem() is None
    call_command("verify_ledger")


def test_an_object_written_between_the_look_and_the_put_is_not_overwritten(s3, monkeypatch):
    """Two processes publishing at once: the conditional PUT (If-None-Match) refuses
    the second, which then finds other bytes and says so."""
    client, bucket = s3
    store = export_store()
    client.put_object(Bucket=bucket, Key="ledger/entries/raced", Body=b"first")
    looks = iter([None])
    real_read = S3Export.read
    monkeypatch.setattr(
        S3Export, "read", lambda self, relative: next(looks, real_read(self, relative))
    )

    with pytest.raises(ExportConflict):
        store.write_once("entries/raced", b"second")

    assert client.get_object(Bucket=bucket, Key="ledger/entries/raced")["Body"].read() == b"first"
