"""POST /api/v1/recordings/batch: many recordings whose audio is already in storage,
each item on its own; and what the purge, the holds and the policies make of them."""

import hashlib
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from compliance.actions.ingest import recording_create, recordings_register
from compliance.actions.profiles import profile_retention_set
from compliance.ledger import restore
from compliance.ledger.models import LedgerEntry
from compliance.ledger.selectors import ledger_verify
from compliance.recordings import services
from compliance.recordings.models import Artefact, Recording
from compliance.recordings.services import RecordingInput
from compliance.retention import purge
from compliance.retention.services import (
    legal_hold_place,
    retention_policies_apply,
    retention_policy_create,
    retention_policy_retire,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory, RecordingFactory

pytestmark = pytest.mark.django_db

URL = "/api/v1/recordings/batch"
RECORDED_AT = "2026-01-31T12:00:00Z"
CLIP = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))


@pytest.fixture
def profile():
    return ProfileFactory(external_id="p-1")


def _put(key: str, content: bytes = CLIP) -> str:
    """An object the platform stored itself, at exactly `key`."""
    saved = default_storage.save(key, ContentFile(content))
    assert saved == key
    return key


def _item(n: int | str, **changes) -> dict:
    return {
        "external_id": f"r-{n}",
        "profile": "p-1",
        "recorded_at": RECORDED_AT,
        "transcript": f"words {n}",
        **changes,
    }


def _post(client, items) -> list[dict]:
    response = client.post(URL, {"recordings": items}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def _codes(results: list[dict]) -> list[str]:
    return [r["error"]["code"] if r["status"] == "error" else r["status"] for r in results]


def _ledger_count() -> int:
    return LedgerEntry.objects.filter(kind="recordings.registered").count()


# --- the batch ----------------------------------------------------------------------


def test_a_batch_registers_recordings_with_their_stored_audio(platform, profile, settings):
    key = _put("ingest/2026/01/a.wav")

    results = _post(
        platform,
        [
            _item(1, audio_key=key, audio_size=len(CLIP), flags=["sensitive"]),
            _item(2, transcript=None),
        ],
    )

    assert results == [
        {"external_id": "r-1", "status": "created"},
        {"external_id": "r-2", "status": "created"},
    ]
    one = Recording.objects.get(external_id="r-1")
    assert (one.profile, one.sensitive, one.state) == (profile, True, "active")
    artefacts = {a.category: a for a in one.artefacts.all()}
    assert artefacts["audio"].storage_key == key
    assert artefacts["audio"].size_bytes == len(CLIP)
    assert artefacts["transcript"].text == "words 1"
    assert not Recording.objects.get(external_id="r-2").artefacts.exists()


def test_every_batch_that_creates_is_one_ledger_entry_naming_what_it_covers(platform, profile):
    _post(platform, [_item(2), _item(1), _item(3, profile="nobody")])

    [entry] = LedgerEntry.objects.filter(kind="recordings.registered")
    assert entry.payload["count"] == 2
    assert entry.payload["external_ids_sha256"] == hashlib.sha256(b"r-1\nr-2").hexdigest()
    assert (entry.payload["first"], entry.payload["last"]) == ("r-1", "r-2")
    assert ledger_verify().ok


def test_an_item_another_ingest_wrote_meanwhile_is_left_out_of_the_batchs_entry(
    profile, monkeypatch
):
    """The rows' statement appends the entry only when it created every item; when one
    was written by another ingest after the batch looked (here: the look misses it),
    the entry that follows names only what this batch created."""
    RecordingFactory(external_id="r-2", profile=profile, recorded_at=timezone.now())
    looked = services._existing
    calls = []

    def the_first_look_misses(ids):
        calls.append(ids)
        return {} if len(calls) == 1 else looked(ids)

    monkeypatch.setattr(services, "_existing", the_first_look_misses)

    results = recordings_register(items=[_input(1), _input(2), _input(3)], actor="t")

    assert [r.status for r in results] == ["created", "error", "created"]
    [entry] = LedgerEntry.objects.filter(kind="recordings.registered")
    assert entry.payload["count"] == 2
    assert entry.payload["external_ids_sha256"] == hashlib.sha256(b"r-1\nr-3").hexdigest()
    assert (entry.payload["first"], entry.payload["last"]) == ("r-1", "r-3")
    assert ledger_verify().ok


def test_an_identical_resend_answers_exists_and_writes_nothing(platform, profile):
    key = _put("ingest/a.wav")
    items = [_item(1, audio_key=key, audio_size=len(CLIP)), _item(2, flags={"false_wake": True})]
    _post(platform, items)
    rows = (Recording.objects.count(), Artefact.objects.count(), LedgerEntry.objects.count())

    results = _post(platform, items)

    assert _codes(results) == ["exists", "exists"]
    assert (
        Recording.objects.count(),
        Artefact.objects.count(),
        LedgerEntry.objects.count(),
    ) == rows
    assert _ledger_count() == 1


@pytest.mark.parametrize(
    "changes",
    [
        {"transcript": "other words"},
        {"transcript": None},
        {"recorded_at": "2026-01-31T12:00:01Z"},
        {"flags": ["sensitive"]},
        {"profile": "p-2"},
        {"audio_key": "ingest/b.wav"},
    ],
)
def test_the_same_external_id_with_other_data_is_a_conflict(platform, profile, changes):
    ProfileFactory(external_id="p-2")
    _put("ingest/b.wav")
    _post(platform, [_item(1)])

    [result] = _post(platform, [_item(1, **changes)])

    assert (result["status"], result["error"]["code"]) == ("error", "conflict")
    assert Recording.objects.count() == 1


def test_the_same_instant_in_another_offset_is_the_same_recording(platform, profile):
    _post(platform, [_item(1)])

    assert _codes(_post(platform, [_item(1, recorded_at="2026-01-31T13:00:00+01:00")])) == [
        "exists"
    ]


def test_a_purged_recordings_id_is_never_resurrected(platform, profile):
    RecordingFactory(external_id="r-1", profile=None, state="purged", purged_at=timezone.now())

    [result] = _post(platform, [_item(1)])

    assert result["error"]["code"] == "purged"
    tombstone = Recording.objects.get(external_id="r-1")
    assert (tombstone.state, tombstone.profile) == ("purged", None)
    assert not tombstone.artefacts.exists()


def test_good_and_bad_items_mixed_each_get_their_own_result_in_order(platform, profile):
    RecordingFactory(external_id="r-taken", profile=profile)
    key = _put("ingest/ok.wav")

    results = _post(
        platform,
        [
            _item(1),
            _item(2, profile="nobody"),
            _item(3, recorded_at="2026-01-31T12:00:00"),
            _item(4, audio_key=key),
            {"external_id": "r-taken", "profile": "p-1", "recorded_at": RECORDED_AT},
            _item(5, flags=["loud"]),
            "not an object",
            _item(6, transcript=42),
            _item(7, audio_key="elsewhere/x.wav"),
            _item(8, audio_key="ingest/missing.wav"),
            _item(9, unexpected=True),
            _item(10, external_id=""),
            _item(11),
        ],
    )

    assert [r["external_id"] for r in results] == [
        "r-1",
        "r-2",
        "r-3",
        "r-4",
        "r-taken",
        "r-5",
        "",
        "r-6",
        "r-7",
        "r-8",
        "r-9",
        "",
        "r-11",
    ]
    assert _codes(results) == [
        "created",
        "unknown_profile",
        "validation_error",
        "created",
        "conflict",
        "validation_error",
        "validation_error",
        "validation_error",
        "audio_key_invalid",
        "audio_missing",
        "validation_error",
        "validation_error",
        "created",
    ]
    assert all(r["error"]["message"] for r in results if r["status"] == "error")
    assert set(Recording.objects.values_list("external_id", flat=True)) == {
        "r-1",
        "r-4",
        "r-11",
        "r-taken",
    }


@pytest.mark.parametrize(
    "key",
    [
        "elsewhere/a.wav",
        "audio/2026/01/someone-elses.wav",
        "/ingest/a.wav",
        "/etc/passwd",
        "ingest/../audio/2026/01/x.wav",
        "ingest/a/../../etc/passwd",
        "ingest/./a.wav",
        "ingest//a.wav",
        "ingest/",
        "ingest",
        "ingestx/a.wav",
        "ingest\\..\\a.wav",
    ],
)
def test_a_key_outside_the_prefix_or_with_dots_or_absolute_is_refused(platform, profile, key):
    _put("ingest/a.wav")

    [result] = _post(platform, [_item(1, audio_key=key)])

    assert result["error"]["code"] == "audio_key_invalid"
    assert not Recording.objects.exists()


def test_the_prefix_is_a_setting(platform, profile, settings):
    settings.INGEST_AUDIO_PREFIX = "platform/uploads/"
    _put("platform/uploads/a.wav")
    _put("ingest/b.wav")

    results = _post(
        platform, [_item(1, audio_key="platform/uploads/a.wav"), _item(2, audio_key="ingest/b.wav")]
    )

    assert _codes(results) == ["created", "audio_key_invalid"]


def test_a_missing_object_is_refused(platform, profile):
    [result] = _post(platform, [_item(1, audio_key="ingest/never-uploaded.wav")])

    assert result["error"]["code"] == "audio_missing"
    assert not Recording.objects.exists()


def test_a_size_that_does_not_match_the_object_is_refused(platform, profile):
    key = _put("ingest/a.wav")

    [result] = _post(platform, [_item(1, audio_key=key, audio_size=len(CLIP) + 1)])

    assert result["error"]["code"] == "audio_mismatch"
    assert not Recording.objects.exists()


def test_a_sha256_that_does_not_match_the_object_is_refused(platform, profile):
    key = _put("ingest/a.wav")
    other = hashlib.sha256(CLIP + b"!").hexdigest()

    [result] = _post(platform, [_item(1, audio_key=key, audio_sha256=other)])

    assert result["error"]["code"] == "audio_mismatch"
    assert not Recording.objects.exists()


def test_a_matching_sha256_is_accepted(platform, profile):
    key = _put("ingest/a.wav")

    results = _post(
        platform, [_item(1, audio_key=key, audio_sha256=hashlib.sha256(CLIP).hexdigest())]
    )

    assert _codes(results) == ["created"]


def test_a_key_another_recording_owns_is_refused(platform, profile):
    key = _put("ingest/a.wav")
    _post(platform, [_item(1, audio_key=key)])

    results = _post(platform, [_item(2, audio_key=key), _item(3, audio_key=key)])

    assert _codes(results) == ["audio_key_in_use", "audio_key_in_use"]
    assert Artefact.objects.filter(storage_key=key).count() == 1


def test_a_key_named_twice_in_one_batch_goes_to_the_first(platform, profile):
    key = _put("ingest/a.wav")

    results = _post(platform, [_item(1, audio_key=key), _item(2, audio_key=key)])

    assert _codes(results) == ["created", "audio_key_in_use"]
    assert Artefact.objects.get(storage_key=key).recording.external_id == "r-1"


def test_an_uploaded_recordings_key_cannot_be_registered(platform, profile, settings):
    """Outside the prefix, and owned: the purge of either would delete the other's audio."""
    settings.INGEST_AUDIO_PREFIX = "audio/"
    uploaded = recording_create(
        data=RecordingInput(
            external_id="r-up",
            profile_external_id="p-1",
            recorded_at=timezone.now(),
            audio=ContentFile(CLIP, name="a.wav"),
        ),
        actor="t",
    )
    key = uploaded.artefacts.get(category="audio").storage_key

    [result] = _post(platform, [_item(1, audio_key=key)])

    assert result["error"]["code"] == "audio_key_in_use"


def test_an_external_id_twice_in_one_batch_is_created_once(platform, profile):
    results = _post(platform, [_item(1), _item(1), _item(1, transcript="other")])

    assert _codes(results) == ["created", "exists", "conflict"]
    assert Recording.objects.count() == 1


def test_an_item_that_fails_on_its_own_does_not_hold_its_external_id(platform, profile):
    """The first item naming an id fails for its own reason (its profile): a later
    item with that id and other data is judged on its own, not as a conflict with it."""
    results = _post(platform, [_item(1, profile="nobody"), _item(1), _item(1)])

    assert _codes(results) == ["unknown_profile", "created", "exists"]
    assert Recording.objects.get(external_id="r-1").profile == profile


@pytest.mark.parametrize(
    ("failing", "code"),
    [
        ({"audio_size": 5}, "audio_mismatch"),
        ({"audio_sha256": "0" * 64}, "audio_mismatch"),
        ({"profile": "nobody"}, "unknown_profile"),
    ],
    ids=["size", "sha256", "profile"],
)
def test_an_item_that_fails_on_its_own_does_not_hold_its_audio_key(
    platform, profile, failing, code
):
    key = _put("ingest/a.wav")
    good = {"audio_key": key, "audio_sha256": hashlib.sha256(CLIP).hexdigest()}

    results = _post(platform, [_item(1, audio_key=key, **failing), _item(2, **good)])

    assert _codes(results) == [code, "created"]
    assert Artefact.objects.get(storage_key=key).recording.external_id == "r-2"


def test_an_object_named_by_many_items_is_looked_at_once(platform, profile, monkeypatch):
    """However many items name it (resends in one batch, say), the storage is asked
    once, and the object read whole once for their digests."""
    key = _put("ingest/a.wav")
    digest = hashlib.sha256(CLIP).hexdigest()
    asked: list[tuple[str, bool]] = []
    stored = services._stored
    monkeypatch.setattr(services, "_stored", lambda k, d: asked.append((k, d)) or stored(k, d))

    results = _post(platform, [_item(1, audio_key=key, audio_sha256=digest)] * 50)

    assert _codes(results) == ["created"] + ["exists"] * 49
    assert asked == [(key, True)]


def test_a_repeat_whose_digest_or_size_is_not_the_objects_is_refused_not_exists(platform, profile):
    """Each item is checked against the object it names, a repeat too: only then may a
    repeat be judged the same recording without comparing digests."""
    key = _put("ingest/a.wav")
    good = _item(1, audio_key=key, audio_sha256=hashlib.sha256(CLIP).hexdigest())

    results = _post(platform, [good, {**good, "audio_sha256": "0" * 64}, {**good, "audio_size": 5}])

    assert _codes(results) == ["created", "audio_mismatch", "audio_mismatch"]


def test_a_repeat_with_its_flags_in_another_order_is_the_same_recording(platform, profile):
    """Judged as a resend is judged against what is stored: flags as a set, and a size
    compared only where both items give one."""
    key = _put("ingest/a.wav")
    first = _item(1, flags=["sensitive", "false_wake"], audio_key=key, audio_size=len(CLIP))
    again = _item(1, flags=["false_wake", "sensitive"], audio_key=key)

    results = _post(platform, [first, again])
    later = _post(platform, [again])

    assert _codes(results) == ["created", "exists"]
    assert _codes(later) == ["exists"]


@pytest.mark.parametrize("external_id", ["a/b", ".", "..", "x\ny", "tab\there", " ", "", "x" * 129])
def test_an_external_id_the_single_post_refuses_is_refused_here_too(platform, profile, external_id):
    """Every id the batch registers can be asked for by `{id}`, as the single POST's."""
    [result] = _post(platform, [_item(1, external_id=external_id)])
    single = platform.post("/api/v1/recordings", _item(2, external_id=external_id), format="json")

    assert result["status"] == "error"
    assert result["error"]["code"] == "validation_error"
    assert single.status_code == 400
    assert not Recording.objects.exists()


def test_blanks_around_an_id_are_trimmed_as_the_single_post_trims_them(platform, profile):
    [result] = _post(platform, [_item(1, external_id=" r-1 ", profile=" p-1 ")])

    assert result["status"] == "created"
    assert platform.get("/api/v1/recordings/r-1").status_code == 200


@pytest.mark.parametrize(
    "recorded_at", ["1970-01-01T00:00:00+14:00", "1969-12-31T23:59:59Z", "9001-01-01T00:00:00Z"]
)
def test_a_time_outside_the_years_the_single_post_takes_is_refused(platform, profile, recorded_at):
    [result] = _post(platform, [_item(1, recorded_at=recorded_at)])
    single = platform.post("/api/v1/recordings", _item(2, recorded_at=recorded_at), format="json")

    assert result["status"] == "error", result
    assert result["error"]["code"] == "validation_error"
    assert single.status_code == 400
    assert not Recording.objects.exists()


# --- the request as a whole -----------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    ["[]", "5", "null", '"x"', "{}", '{"recordings": {}}', '{"recordings": "r-1"}'],
)
def test_a_body_that_is_not_an_object_with_a_list_is_400(platform, profile, body):
    response = platform.post(URL, body, content_type="application/json")

    assert response.status_code == 400, response.content
    assert response.json()["error"]["code"] == "validation_error"


def test_more_than_a_thousand_items_is_400_and_writes_nothing(platform, profile):
    response = platform.post(URL, {"recordings": [_item(n) for n in range(1001)]}, format="json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "batch_too_large"
    assert not Recording.objects.exists()


def test_an_empty_list_is_an_empty_answer(platform):
    assert _post(platform, []) == []


def test_malformed_json_is_400(platform):
    response = platform.post(URL, "{", content_type="application/json")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_request"


@pytest.mark.parametrize("scopes", [["recordings:read"], ["consents:write"]])
def test_the_batch_needs_recordings_write(api_client_with_scopes, profile, scopes):
    response = api_client_with_scopes(*scopes).post(URL, {"recordings": [_item(1)]}, format="json")

    assert response.status_code == 403
    assert not Recording.objects.exists()


def test_the_batch_is_in_the_openapi_schema(platform):
    schema = platform.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/recordings/batch"]["post"]
    assert operation["operationId"] == "recordings_register"
    request = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    item = schema["components"]["schemas"][request.rsplit("/", 1)[1]]
    assert item["properties"]["recordings"]["maxItems"] == 1000
    response = operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert "results" in schema["components"]["schemas"][response.rsplit("/", 1)[1]]["properties"]


@postgres_only()
def test_a_batch_takes_the_same_few_statements_for_ten_or_three_hundred(profile, monkeypatch):
    # What a process reads once and keeps (the policy table; the check of the ledger
    # against its export, every few seconds) is read by a first batch and kept cached,
    # so that only each batch's own statements are counted.
    monkeypatch.setattr(restore, "STATE_TTL", 3600.0)

    def statements(n: int, offset: int) -> int:
        items = []
        for i in range(offset, offset + n):
            key = _put(f"ingest/q/{i}.wav")
            items.append(
                RecordingInput(
                    external_id=f"q-{i}",
                    profile_external_id="p-1",
                    recorded_at=timezone.now(),
                    transcript="hi",
                    audio_key=key,
                )
            )
        with CaptureQueriesContext(connection) as queries:
            results = recordings_register(items=items, actor="t")
        assert {r.status for r in results} == {"created"}
        return len(queries.captured_queries)

    statements(1, 5000)
    small, large = statements(10, 0), statements(300, 1000)

    assert small == large
    assert large <= 14


# --- retention of what is registered -----------------------------------------------------


def test_expiry_is_the_shorter_of_policy_and_choice(platform, profile):
    retention_policy_create(jurisdiction="*", category="audio", retention_days=30, actor="t")
    profile_retention_set(profile=profile, choice="3_months", actor="t")
    _put("ingest/a.wav")

    _post(platform, [_item(1, audio_key="ingest/a.wav")])

    recording = Recording.objects.get(external_id="r-1")
    audio = recording.artefacts.get(category="audio")
    transcript = recording.artefacts.get(category="transcript")
    assert (audio.expires_at, audio.expiry_basis[:7]) == (
        recording.recorded_at + timedelta(days=30),
        "policy:",
    )
    assert (transcript.expires_at, transcript.expiry_basis) == (
        recording.recorded_at + timedelta(days=90),
        "choice:3_months",
    )


def test_a_dont_save_registration_is_purged_with_its_file_on_the_next_run(
    platform, profile, settings
):
    profile_retention_set(profile=profile, choice="dont_save", actor="t")
    key = _put("ingest/a.wav")
    _post(platform, [_item(1, audio_key=key)])
    assert Path(settings.MEDIA_ROOT, key).exists()

    run = purge.purge_expired()

    assert run.purged == 2
    assert not Path(settings.MEDIA_ROOT, key).exists()
    recording = Recording.objects.get(external_id="r-1")
    assert recording.state == "purged"
    assert set(recording.artefacts.values_list("state", "storage_key")) == {("purged", "")}


def test_the_purge_deletes_exactly_the_registered_key(platform, profile, settings):
    retention_policy_create(jurisdiction="*", category="audio", retention_days=1, actor="t")
    retention_policies_apply()
    key = _put("ingest/deep/path/a.wav")
    neighbour = _put("ingest/deep/path/b.wav")
    _post(platform, [_item(1, audio_key=key, recorded_at="2025-01-01T00:00:00Z")])

    purge.purge_expired()

    assert not Path(settings.MEDIA_ROOT, key).exists()
    assert Path(settings.MEDIA_ROOT, neighbour).exists()
    assert Artefact.objects.get(recording__external_id="r-1", category="audio").state == "purged"


def test_a_legal_hold_keeps_a_dont_save_registration_and_its_file(platform, profile, settings):
    profile_retention_set(profile=profile, choice="dont_save", actor="t")
    legal_hold_place(profile=profile, reason="litigation", case_reference="C-1", actor="t")
    key = _put("ingest/a.wav")
    _post(platform, [_item(1, audio_key=key)])

    run = purge.purge_expired()

    assert (run.purged, run.held) == (0, 2)
    assert Path(settings.MEDIA_ROOT, key).read_bytes() == CLIP
    assert Recording.objects.get(external_id="r-1").state == "active"


def test_after_a_purge_the_key_may_not_be_registered_again_for_lack_of_a_file(platform, profile):
    profile_retention_set(profile=profile, choice="dont_save", actor="t")
    key = _put("ingest/a.wav")
    _post(platform, [_item(1, audio_key=key)])
    purge.purge_expired()

    [result] = _post(platform, [_item(2, audio_key=key)])

    assert result["error"]["code"] == "audio_missing"


# --- the policy table kept per process ----------------------------------------------------


def _expiry_days(external_id: str) -> float | None:
    recording = Recording.objects.get(external_id=external_id)
    expires = recording.artefacts.get(category="transcript").expires_at
    return None if expires is None else (expires - recording.recorded_at) / timedelta(days=1)


@pytest.mark.parametrize("path", ["batch", "single"])
def test_a_new_policy_version_is_used_by_the_next_ingest_without_clearing_a_cache(
    platform, profile, path
):
    def ingest(n: int) -> None:
        if path == "batch":
            assert _codes(_post(platform, [_item(n)])) == ["created"]
        else:
            response = platform.post("/api/v1/recordings", _item(n), format="json")
            assert response.status_code == 201, response.content

    first = retention_policy_create(
        jurisdiction="*", category="transcript", retention_days=30, actor="t"
    )
    ingest(1)
    # another process writes a new version: this process's copy is not told
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    ingest(2)
    retention_policy_retire(policy=first.__class__.objects.latest("id"), actor="t")
    ingest(3)

    assert (_expiry_days("r-1"), _expiry_days("r-2"), _expiry_days("r-3")) == (30, 10, None)


# --- concurrency ---------------------------------------------------------------------------


def _in_threads(*batches: list[RecordingInput]) -> list[list]:
    barrier = threading.Barrier(len(batches))
    results: list[list] = [[] for _ in batches]
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = recordings_register(items=batches[i], actor=f"t{i}")
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    return results


def _input(n: int, **changes) -> RecordingInput:
    values = {
        "external_id": f"r-{n}",
        "profile_external_id": "p-1",
        "recorded_at": timezone.now().replace(microsecond=0) - timedelta(hours=1),
        "transcript": f"words {n}",
    }
    return RecordingInput(**{**values, **changes})


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_two_batches_with_overlapping_ids_create_each_once_and_the_other_sees_exists():
    ProfileFactory(external_id="p-1")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=1)
    for _round in range(5):
        Recording.objects.all().delete()
        # overlapping in both orders, so that a batch that did not insert in one order
        # would deadlock with the other
        left = [_input(n, recorded_at=at) for n in range(0, 300)]
        right = [_input(n, recorded_at=at) for n in reversed(range(150, 450))]

        a, b = _in_threads(left, right)

        assert Recording.objects.count() == 450
        assert Artefact.objects.count() == 450
        statuses = {}
        for result in a + b:
            statuses.setdefault(result.external_id, []).append(result.status)
        overlap = {f"r-{n}" for n in range(150, 300)}
        for external_id, seen in statuses.items():
            if external_id in overlap:
                assert sorted(seen) == ["created", "exists"], (external_id, seen)
            else:
                assert seen == ["created"], (external_id, seen)
    assert ledger_verify().ok


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_two_batches_registering_the_same_keys_at_once_give_each_key_one_owner():
    ProfileFactory(external_id="p-1")
    for round_ in range(5):
        keys = [_put(f"ingest/{round_}/{n}.wav") for n in range(100)]
        # different external ids, the same objects: in the order of their external ids
        # (the order their recordings are written in), one batch names the keys
        # forwards and the other backwards
        ids = sorted(range(100), key=lambda n: f"r-{1000 * round_ + n:06d}")
        left = [_input(f"{1000 * round_ + n:06d}", audio_key=keys[n]) for n in ids]
        right = [_input(f"{1000 * round_ + 500 + n:06d}", audio_key=keys[99 - n]) for n in ids]

        a, b = _in_threads(left, right)

        for key in keys:
            assert Artefact.objects.filter(storage_key=key).count() == 1
        outcomes = sorted(r.status if r.status != "error" else r.code for r in a + b)
        assert outcomes == ["audio_key_in_use"] * 100 + ["created"] * 100
        owners = Artefact.objects.filter(storage_key__in=keys).values_list(
            "recording__external_id", flat=True
        )
        created = {r.external_id for r in a + b if r.status == "created"}
        assert set(owners) == created
        # the losers left no recording behind
        assert Recording.objects.filter(artefacts__isnull=True).count() == 0


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_a_retention_choice_changed_during_an_ingest_applies_to_what_it_writes(monkeypatch):
    """The ingest reads the choice under the profile's lock (FOR SHARE), which the
    change takes FOR UPDATE: the change waits, then reschedules what the ingest wrote.
    The policies are read (retention's `artefacts_expiry_at`, handed down by the
    ingest action) after the profiles are locked."""
    from compliance.retention import services

    profile = ProfileFactory(external_id="p-1", retention_choice="18_months")
    locked = threading.Event()
    read_table = services.policy_table

    def slow_table(**kwargs):
        locked.set()  # the profiles are locked and read by now
        time.sleep(1.0)  # long enough for the change to commit, were it not blocked
        return read_table(**kwargs)

    monkeypatch.setattr(services, "policy_table", slow_table)
    errors: list[BaseException] = []

    def ingest() -> None:
        try:
            [result] = recordings_register(items=[_input(1)], actor="t")
            assert result.status == "created"
        except BaseException as error:
            errors.append(error)
        finally:
            connection.close()

    thread = threading.Thread(target=ingest)
    thread.start()
    assert locked.wait(10)
    profile_retention_set(profile=profile, choice="dont_save", actor="t")
    thread.join()

    assert not errors, errors
    transcript = Artefact.objects.get(recording__external_id="r-1", category="transcript")
    assert transcript.expiry_basis == "choice:dont_save"
