"""storage_delete: DeleteObjects batches of up to 1,000 keys on S3 (against a local S3
server, moto_server on 127.0.0.1), the per-key loop on any other storage."""

import http.client
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, timedelta
from urllib.parse import quote, urlsplit

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, default_storage
from django.utils import timezone

from compliance.core import storage as storage_module
from compliance.core.storage import StorageDeleteError, storage_delete, storage_listing
from tests.retention.conftest import ingest  # noqa: F401 - a fixture

boto3 = pytest.importorskip("boto3")
S3Storage = pytest.importorskip("storages.backends.s3").S3Storage


CREDENTIALS = {"access_key": "testing", "secret_key": "testing", "region_name": "us-east-1"}


@pytest.fixture
def bucket(s3_server, request):
    """A new bucket for the test, and a client on it."""
    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    name = f"earshot-audio-{abs(hash(request.node.name)) % 10**8}"
    client.create_bucket(Bucket=name)
    return client, name


def s3_storage(s3_server: str, bucket: str, **options) -> S3Storage:
    return S3Storage(bucket_name=bucket, endpoint_url=s3_server, **CREDENTIALS, **options)


def put(client, bucket: str, keys: list[str]) -> None:
    """Objects of one byte at `keys`: plain PUTs on kept-alive connections, a few at a
    time (the local server takes no signature; botocore's signing would double the
    time of the 2,500)."""
    endpoint = urlsplit(client.meta.endpoint_url)

    def put_share(share: list[str]) -> None:
        connection = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=30)
        try:
            for key in share:
                connection.request("PUT", f"/{bucket}/{quote(key)}", body=b"x")
                answer = connection.getresponse()
                answer.read()
                assert answer.status == 200, (key, answer.status)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=4) as pool:
        list(pool.map(put_share, [keys[n::4] for n in range(4)]))


def stored(client, bucket: str) -> set[str]:
    keys: set[str] = set()
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys |= {o["Key"] for o in page.get("Contents", ())}
    return keys


def count_delete_objects(storage: S3Storage) -> list[int]:
    """The number of keys in each DeleteObjects request the storage's client sends."""
    sizes: list[int] = []

    def before(params, **_):
        sizes.append(len(params["Delete"]["Objects"]))
        assert params["Delete"]["Quiet"] is True

    storage.connection.meta.client.meta.events.register(
        "provide-client-params.s3.DeleteObjects", before
    )
    return sizes


def test_2500_keys_go_in_three_delete_objects_requests(s3_server, bucket):
    client, name = bucket
    keys = [f"audio/2026/12/{n:05d}.wav" for n in range(2500)]
    put(client, name, [*keys, "audio/2026/12/kept.wav"])
    storage = s3_storage(s3_server, name)
    requests = count_delete_objects(storage)

    storage_delete(keys, storage)

    assert requests == [1000, 1000, 500]
    assert stored(client, name) == {"audio/2026/12/kept.wav"}


def test_a_missing_key_counts_as_deleted(s3_server, bucket):
    client, name = bucket
    put(client, name, ["audio/a.wav"])
    storage = s3_storage(s3_server, name)

    storage_delete(["audio/a.wav", "audio/never-there.wav"], storage)
    storage_delete(["audio/a.wav"], storage)  # again: gone already

    assert stored(client, name) == set()


def test_the_storage_location_prefix_applies_as_in_its_own_delete(s3_server, bucket):
    client, name = bucket
    put(client, name, ["media/audio/a.wav", "media/audio/b.wav", "audio/a.wav"])
    storage = s3_storage(s3_server, name, location="media")

    # names as S3Storage.delete takes them: cleaned (./, //) and under the location
    storage_delete(["audio/a.wav", "audio//./b.wav"], storage)

    assert stored(client, name) == {"audio/a.wav"}
    storage.delete("audio/a.wav")  # its own delete agrees on what a name means
    assert stored(client, name) == {"audio/a.wav"}


def test_a_key_the_answer_lists_as_failed_raises_naming_it(s3_server, bucket, monkeypatch):
    client, name = bucket
    keys = [f"audio/{n}.wav" for n in range(1500)]
    storage = s3_storage(s3_server, name, location="media")
    s3 = storage.connection.meta.client
    real = s3.delete_objects

    def delete_objects(**params):
        """S3 refuses two of the keys (an object under legal hold, say)."""
        objects = params["Delete"]["Objects"]
        refused = [o for o in objects if o["Key"] in {"media/audio/1400.wav", "media/audio/7.wav"}]
        params["Delete"]["Objects"] = [o for o in objects if o not in refused]
        answer = real(**params)
        answer.setdefault("Errors", []).extend(
            {"Key": o["Key"], "Code": "AccessDenied", "Message": "Access Denied"} for o in refused
        )
        return answer

    monkeypatch.setattr(s3, "delete_objects", delete_objects)
    put(client, name, [f"media/audio/{n}.wav" for n in (3, 7, 1200, 1400)])

    with pytest.raises(StorageDeleteError) as raised:
        storage_delete(keys, storage)

    assert isinstance(raised.value, OSError)
    assert "2 of 1500" in str(raised.value)
    assert "'audio/7.wav': AccessDenied" in str(raised.value)
    assert [f[:2] for f in raised.value.failures] == [
        ("audio/7.wav", "AccessDenied"),
        ("audio/1400.wav", "AccessDenied"),
    ]
    # both batches were sent: only the refused objects are left
    assert stored(client, name) == {"media/audio/7.wav", "media/audio/1400.wav"}


def test_no_such_key_from_an_s3_compatible_server_counts_as_deleted(s3_server, bucket, monkeypatch):
    _, name = bucket
    storage = s3_storage(s3_server, name)
    s3 = storage.connection.meta.client
    monkeypatch.setattr(
        s3,
        "delete_objects",
        lambda **params: {"Errors": [{"Key": "audio/a.wav", "Code": "NoSuchKey"}]},
    )

    storage_delete(["audio/a.wav"], storage)


def test_on_the_file_system_each_file_is_deleted_and_a_missing_one_is_fine(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    keys = [storage.save(f"audio/{n}.wav", ContentFile(b"x")) for n in range(3)]

    storage_delete([*keys, "audio/never-there.wav"], storage)

    assert not any(p.is_file() for p in tmp_path.rglob("*"))
    storage_delete([], storage)


def test_other_errors_of_another_storage_are_raised(tmp_path, monkeypatch):
    storage = FileSystemStorage(location=tmp_path)

    def delete(name):
        raise PermissionError(name)

    monkeypatch.setattr(storage, "delete", delete)
    with pytest.raises(PermissionError):
        storage_delete(["audio/a.wav"], storage)


def test_default_storage_is_used_when_none_is_given(settings):
    key = default_storage.save("audio/a.wav", ContentFile(b"x"))

    storage_delete([key])

    assert not default_storage.exists(key)


def count_requests(storage: S3Storage, operation: str) -> list[dict]:
    """The API parameters (Bucket, Prefix...) of each `operation` request (ListObjectsV2,
    HeadObject) that the storage's client sends."""
    sent: list[dict] = []
    events = storage.connection.meta.client.meta.events
    given: list[dict] = []
    events.register(
        f"provide-client-params.s3.{operation}", lambda params, **_: given.append(params)
    )
    # counted as sent just before the request goes (after validation)
    events.register(f"before-call.s3.{operation}", lambda **_: sent.append(given[-1]))
    return sent


def test_the_s3_listing_pages_under_the_location_in_byte_order(s3_server, bucket):
    client, name = bucket
    keys = [f"media/audio/{n:04d}.wav" for n in range(1003)]
    others = ["media/audio2/x.wav", "audio/outside-the-location.wav", "media/other.wav"]
    odd = ["media/audio/a-b.wav", "media/audio/a/b.wav", "media/audio/Z.wav",
           "media/audio/\u00e9.wav", "media/audio/z.wav"]  # fmt: skip
    put(client, name, [*keys, *others, *odd, "media/audio/dir/"])  # and a directory marker
    storage = s3_storage(s3_server, name, location="media")
    lists = count_requests(storage, "ListObjectsV2")
    heads = count_requests(storage, "HeadObject")
    started = timezone.now()

    listing = list(storage_listing("audio/", storage))

    names = [n for n, _ in listing]
    expected = sorted((k.removeprefix("media/") for k in keys + odd), key=str.encode)
    assert names == expected
    assert names[-5:] == ["audio/Z.wav", "audio/a-b.wav", "audio/a/b.wav", "audio/z.wav",
                          "audio/\u00e9.wav"]  # fmt: skip
    assert all(m.tzinfo is UTC and abs(m - started) < timedelta(minutes=5) for _, m in listing)
    assert len(lists) == 2 and {p["Prefix"] for p in lists} == {"media/audio/"}
    assert heads == []
    # the names are the storage's own: its methods take them
    assert storage.exists(names[0])
    assert list(storage_listing("audio", storage)) == listing
    assert list(storage_listing("nothing/", storage)) == []


def test_the_file_system_listing_walks_nested_directories_in_byte_order(tmp_path):
    storage = FileSystemStorage(location=tmp_path)
    names = ["audio/b.wav", "audio/a/2.wav", "audio/a/1/x.wav", "audio/a-z.wav", "audio/Z.wav",
             "audio/\u00e9.wav", "audio/a.wav", "audio2/no.wav", "top.wav"]  # fmt: skip
    for n in names:
        storage.save(n, ContentFile(b"x"))

    listing = list(storage_listing("audio/", storage))

    assert [n for n, _ in listing] == [
        "audio/Z.wav", "audio/a-z.wav", "audio/a.wav", "audio/a/1/x.wav", "audio/a/2.wav",
        "audio/b.wav", "audio/\u00e9.wav",
    ]  # fmt: skip
    assert all(m.tzinfo is UTC and m == storage.get_modified_time(n) for n, m in listing)
    assert list(storage_listing("missing/", storage)) == []


# --- end to end, with S3 as the default storage ----------------------------------------


@pytest.fixture
def s3_default_storage(s3_server, bucket, settings, monkeypatch):
    """STORAGES' default is S3Storage on the test's bucket, configured by AWS_* settings."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    client, name = bucket
    settings.AWS_STORAGE_BUCKET_NAME = name
    settings.AWS_S3_ENDPOINT_URL = s3_server
    settings.AWS_S3_REGION_NAME = "us-east-1"
    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "storages.backends.s3.S3Storage"},
    }
    return client, name


@pytest.mark.django_db
def test_the_storage_sweep_deletes_orphaned_audio_on_s3_in_one_request(
    s3_default_storage,
    ingest,  # noqa: F811 - the imported fixture
):
    from compliance.retention.storage_sweep import storage_sweep

    client, name = s3_default_storage

    kept = ingest(external_id="rec-kept").artefacts.get(category="audio").storage_key
    # an ingest that stored its audio, then died before its rows committed
    orphan_key = default_storage.save("audio/2026/12/orphan.wav", ContentFile(b"RIFF"))
    assert isinstance(default_storage._wrapped, S3Storage)
    assert stored(client, name) == {kept, orphan_key}
    requests = count_delete_objects(default_storage)
    heads = count_requests(default_storage, "HeadObject")

    result = storage_sweep(now=timezone.now() + timedelta(hours=2))

    assert (result.files_checked, result.orphan_files_deleted) == (2, 1)
    assert requests == [1]
    assert heads == []  # the times come with the listing
    assert stored(client, name) == {kept}


@pytest.mark.django_db(transaction=True)
def test_the_batch_purge_deletes_expired_audio_on_s3_and_keeps_the_rest(
    s3_default_storage,
    monkeypatch,
    ingest,  # noqa: F811
):
    from compliance.recordings.models import Recording
    from compliance.retention.purge import purge_expired
    from compliance.retention.services import retention_policies_apply, retention_policy_create

    client, name = s3_default_storage
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()

    def audio_key(external_id: str, days_ago: int) -> str:
        recording = ingest(external_id=external_id, days_ago=days_ago)
        return recording.artefacts.get(category="audio").storage_key

    expired = {audio_key(f"rec-old-{n}", days_ago=11) for n in range(3)}
    kept = audio_key("rec-new", days_ago=1)
    assert stored(client, name) == expired | {kept}
    # the purge deletes from its own threads, each with its own S3 client: counted here
    bulk: list[int] = []
    real_bulk = storage_module._s3_delete
    monkeypatch.setattr(
        storage_module, "_s3_delete", lambda st, keys: bulk.append(len(keys)) or real_bulk(st, keys)
    )
    monkeypatch.setattr(S3Storage, "delete", lambda *a: pytest.fail("a DELETE per object"))

    purge_expired()

    assert stored(client, name) == {kept}
    assert sum(bulk) == len(expired)
    states = dict(Recording.objects.values_list("external_id", "state"))
    assert states == {"rec-old-0": "purged", "rec-old-1": "purged", "rec-old-2": "purged",
                      "rec-new": "active"}  # fmt: skip


@pytest.mark.django_db
def test_an_ingest_that_fails_removes_its_uploaded_audio_from_s3(s3_default_storage):
    from compliance.actions.ingest import recording_create
    from compliance.core.errors import ApplicationError
    from compliance.recordings.services import RecordingInput

    client, name = s3_default_storage

    with pytest.raises(ApplicationError):
        recording_create(
            data=RecordingInput(
                external_id="rec-1",
                profile_external_id="no-such-profile",
                recorded_at=timezone.now() - timedelta(days=1),
                audio=ContentFile(b"RIFF....WAVEfmt ", name="clip.wav"),
            ),
            actor="test",
        )

    assert stored(client, name) == set()


def test_the_ledger_recovery_logs_a_failed_batch_and_deletes_the_next(monkeypatch, caplog):
    from compliance.recovery import services as recovery

    keys = [default_storage.save(f"audio/{n}.wav", ContentFile(b"x")) for n in range(5)]
    monkeypatch.setattr(recovery, "DELETE_OBJECTS_MAX", 2)
    real = default_storage.delete

    def delete(name):
        if name == keys[1]:
            raise PermissionError(name)
        real(name)

    monkeypatch.setattr(default_storage, "delete", delete)

    recovery._delete_files(keys)

    # the failed batch's first file went before the failure; the next batches all went
    assert [default_storage.exists(key) for key in keys] == [False, True, False, False, False]
    assert "ledger.recover_files_not_deleted keys=2 first_key=audio/0.wav" in caplog.text


@pytest.mark.django_db
def test_the_storage_sweep_on_s3_merges_listings_with_no_head_request(
    s3_default_storage,
    monkeypatch,
    ingest,  # noqa: F811
):
    from compliance.recordings.models import Artefact
    from compliance.retention import storage_sweep as sweep_module

    client, name = s3_default_storage

    def audio(external_id: str) -> Artefact:
        return ingest(external_id=external_id).artefacts.get(category="audio")

    kept, gone = audio("rec-kept"), audio("rec-gone")
    registered, registered_gone = audio("rec-registered"), audio("rec-registered-gone")
    # objects the platform registered under INGEST_AUDIO_PREFIX
    put(client, name, ["ingest/present.wav"])
    for artefact in (registered, registered_gone):
        client.delete_object(Bucket=name, Key=artefact.storage_key)
    Artefact.objects.filter(pk=registered.pk).update(storage_key="ingest/present.wav")
    Artefact.objects.filter(pk=registered_gone.pk).update(storage_key="ingest/gone.wav")
    client.delete_object(Bucket=name, Key=gone.storage_key)
    orphan_key = default_storage.save("audio/2026/12/orphan.wav", ContentFile(b"RIFF"))
    # the listing's start is the bound (no margin for clocks in this test)
    monkeypatch.setattr(sweep_module, "CLOCK_SKEW", timedelta(0))
    heads = count_requests(default_storage, "HeadObject")
    lists = count_requests(default_storage, "ListObjectsV2")
    late: list[Artefact] = []

    def ingest_while_listing(**_):
        """An ingest lands after the first page of the listing of `audio/` for the
        artefacts was read: its file is in no page, its row in the database; it must
        not count as missing."""
        if len(lists) == 2 and not late:
            late.append(audio("rec-late"))

    default_storage.connection.meta.client.meta.events.register(
        "after-call.s3.ListObjectsV2", ingest_while_listing
    )

    result = sweep_module.storage_sweep(now=timezone.now() + timedelta(hours=2))

    assert heads == []
    assert [p["Prefix"] for p in lists] == ["audio/", "audio/", "ingest/"]
    assert (result.files_checked, result.orphan_files_deleted) == (2, 1)
    assert result.rows_without_file == 2
    states = dict(Artefact.objects.filter(category="audio").values_list("pk", "state"))
    assert states == {
        kept.pk: "active",
        gone.pk: "purged",
        registered.pk: "active",
        registered_gone.pk: "purged",
        late[0].pk: "active",
    }
    assert Artefact.objects.get(pk=gone.pk).purge_reason == "file_missing"
    assert orphan_key not in stored(client, name)
    assert late[0].storage_key in stored(client, name)


@pytest.mark.django_db
def test_on_s3_a_key_under_no_listed_prefix_or_not_normalized_is_asked_for(s3_default_storage):
    from compliance.recordings.models import Artefact
    from compliance.retention.storage_sweep import storage_sweep
    from tests.factories import ArtefactFactory

    client, name = s3_default_storage
    put(client, name, ["elsewhere/present.wav", "audio/present.wav"])
    present = ArtefactFactory(storage_key="elsewhere/present.wav")
    gone = ArtefactFactory(storage_key="elsewhere/gone.wav")
    # a name the storage maps to another key (not one the ingest makes): asked too
    unusual = ArtefactFactory(storage_key="audio/./present.wav")
    Artefact.objects.update(created_at=timezone.now() - timedelta(hours=1))
    heads = count_requests(default_storage, "HeadObject")

    result = storage_sweep()

    assert sorted(p["Key"] for p in heads) == [
        "audio/present.wav",
        "elsewhere/gone.wav",
        "elsewhere/present.wav",
    ]
    assert result.rows_without_file == 1
    assert Artefact.objects.get(pk=present.pk).state == "active"
    assert Artefact.objects.get(pk=unusual.pk).state == "active"
    assert Artefact.objects.get(pk=gone.pk).state == "purged"


@pytest.mark.django_db
def test_on_s3_a_wrong_bucket_deletes_no_object_and_tombstones_no_artefact(
    s3_default_storage, settings
):
    """The bucket is not the artefacts' (a wrong AWS_STORAGE_BUCKET_NAME or location): its
    listing has none of their keys, and its objects are named by no artefact."""
    from compliance.ledger.models import LedgerEntry
    from compliance.recordings.models import Artefact
    from compliance.retention.storage_sweep import storage_sweep
    from tests.factories import ArtefactFactory

    client, name = s3_default_storage
    settings.STORAGE_SWEEP_MAX_CHANGE_FLOOR = 5
    others = [f"audio/2026/12/other-{n}.wav" for n in range(6)]
    put(client, name, others)
    for n in range(6):
        ArtefactFactory(storage_key=f"audio/2026/12/ours-{n}.wav")
    Artefact.objects.update(created_at=timezone.now() - timedelta(hours=1))
    deletes = count_delete_objects(default_storage)

    result = storage_sweep(now=timezone.now() + timedelta(hours=2))

    assert (result.files_checked, result.orphan_files_found, result.orphan_files_deleted) == (
        6,
        6,
        0,
    )
    assert (result.rows_checked, result.rows_found_without_file, result.rows_without_file) == (
        6,
        6,
        0,
    )
    assert (result.orphans_refused, result.rows_refused) == (True, True)
    assert deletes == []
    assert stored(client, name) == set(others)
    assert set(Artefact.objects.values_list("state", flat=True)) == {"active"}
    assert list(LedgerEntry.objects.values_list("kind", flat=True)) == ["storage.sweep_refused"]
