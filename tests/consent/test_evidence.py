import json
import subprocess
import sys
from pathlib import Path

import pytest

from compliance.actions.consent import consent_set
from compliance.actions.profiles import profile_retention_set
from compliance.ledger import signing
from compliance.ledger.checkpoints import ledger_checkpoint_issue
from tests.conftest import postgres_only
from tests.factories import AccountFactory, ProfileFactory

ROOT = Path(__file__).resolve().parent.parent.parent
pytestmark = [pytest.mark.django_db, postgres_only()]


def _verify(tmp_path: Path, bundle: dict, *extra: str) -> subprocess.CompletedProcess:
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle))
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", "earshot_verify", str(path), "--key",
         signing.signing_key().verifier_key, *extra],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


@pytest.fixture
def history(tmp_path) -> dict:
    """Three consent events and a retention choice of one profile, another profile's
    event, and a checkpoint the auditor kept after the first event."""
    profile = ProfileFactory(external_id="prof-e", account=AccountFactory(jurisdiction="DE"))
    other = ProfileFactory(external_id="prof-other", account=AccountFactory(jurisdiction="DE"))
    consent_set(profile=profile, purpose="human_review", granted=True, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    kept = ledger_checkpoint_issue()
    consent_set(profile=other, purpose="human_review", granted=True, channel="app",
                notice_version="secret-notice", actor="t")  # fmt: skip
    consent_set(profile=profile, purpose="model_training", granted=True, channel="web",
                notice_version="n1", actor="t")  # fmt: skip
    consent_set(profile=profile, purpose="human_review", granted=False, channel="web",
                notice_version="n2", actor="t")  # fmt: skip
    profile_retention_set(profile=profile, choice="3_months", actor="t")
    (tmp_path / "kept").write_text(kept.note)
    return {"kept": kept, "kept_path": str(tmp_path / "kept")}


def test_the_owner_s_bundle_verifies_offline_against_the_checkpoint_they_kept(
    history, platform, tmp_path
):
    size = history["kept"].tree_size
    bundle = platform.get(f"/api/v1/profiles/prof-e/evidence?since_size={size}").json()

    result = _verify(tmp_path, bundle, "--checkpoint", history["kept_path"])

    assert result.returncode == 0, result.stderr
    assert [(e["purpose"], e["granted"]) for e in bundle["consent_events"]] == [
        ("human_review", True),
        ("model_training", True),
        ("human_review", False),
    ]
    assert bundle["consistency"]["from"] == size
    assert [r["kind"] for r in bundle["retention_choices"]] == ["retention_choice.changed"]
    assert "prof-other" not in json.dumps(bundle)
    assert "secret-notice" not in json.dumps(bundle)


def _flip(bundle: dict) -> None:
    bundle["consent_events"][2]["granted"] = True


def _drop(bundle: dict) -> None:
    del bundle["consent_events"][1]


def _reorder(bundle: dict) -> None:
    bundle["consent_events"].reverse()


def _notice(bundle: dict) -> None:
    bundle["consent_events"][0]["notice_version"] = "n9"


def _retention(bundle: dict) -> None:
    bundle["retention_choices"][0]["payload"] = {"choice": "until_deleted"}


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_flip, "granted is True but the leaf records consent.withdrawn"),
        (_drop, "leave out (dropped)"),
        (_reorder, "not in ledger order"),
        (_notice, "notice_version is 'n9'"),
        (_retention, "payload is not what the leaf records"),
    ],
    ids=["flipped consent", "dropped event", "reordered events", "notice", "retention"],
)
def test_a_tampered_bundle_is_refused(history, platform, tmp_path, tamper, named):
    bundle = platform.get("/api/v1/profiles/prof-e/evidence").json()
    tamper(bundle)

    result = _verify(tmp_path, bundle)

    assert result.returncode == 1
    assert named in result.stderr, result.stderr


@pytest.mark.parametrize("since", ["x", "-1", "99999"])
def test_a_bad_since_size_is_a_400(history, platform, since):
    response = platform.get(f"/api/v1/profiles/prof-e/evidence?since_size={since}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] in {"invalid_parameter", "out_of_range"}


def test_an_export_that_holds_another_history_is_a_503_not_a_500(platform, settings):
    """A database restored beside an export of a longer or other history (found by
    bench/fuzz.py, whose database is new each run): nothing new can be signed, and the
    evidence and receipt endpoints say why instead of failing."""
    profile = ProfileFactory(external_id="prof-x", account=AccountFactory(jurisdiction="DE"))
    consent_set(profile=profile, purpose="human_review", granted=True, channel="app",
                notice_version="n1", actor="t")  # fmt: skip
    export = Path(settings.LEDGER_EXPORT) / "checkpoints"
    export.mkdir(parents=True, exist_ok=True)
    for size in range(1, 50):
        (export / f"{size:020d}").write_text("another history's checkpoint\n")

    for path in (
        "/api/v1/profiles/prof-x/evidence",
        "/api/v1/profiles/prof-x/consents/human_review/receipt",
    ):
        response = platform.get(path)

        assert response.status_code == 503, path
        assert response.json()["error"]["code"] == "ledger_inconsistent"


@pytest.fixture
def shared(db) -> dict:
    """Entries that cover two profiles: one purge batch deleting a recording of each,
    one draw handing out a clip of each (prof-a's heard through its link)."""
    from django.db.models import Q
    from django.utils import timezone

    from compliance.consent.models import ConsentState, Purpose
    from compliance.retention.purge import purge_batch
    from compliance.retention.reasons import PurgeReason
    from compliance.sampling.models import ReviewItem
    from compliance.sampling.services import SampleRequest, review_item_audio_open, sample_draw
    from tests.sampling.conftest import LINK, reviewable

    mine = ProfileFactory(external_id="prof-a", account=AccountFactory(jurisdiction="DE"))
    theirs = ProfileFactory(external_id="prof-b", account=AccountFactory(jurisdiction="DE"))
    for profile, external_id in ((mine, "rec-a-old"), (theirs, "rec-b-old")):
        reviewable(profile=profile, external_id=external_id)
    purge_batch(
        Q(recording__external_id__in=["rec-a-old", "rec-b-old"]),
        now=timezone.now(),
        reason=PurgeReason.DELETION_REQUEST,
        order=("id",),
    )
    for profile, external_id in ((mine, "rec-a-heard"), (theirs, "rec-b-heard")):
        reviewable(profile=profile, external_id=external_id)
    ConsentState.objects.filter(profile__in=[mine, theirs], purpose=Purpose.HUMAN_REVIEW).update(
        granted=True
    )
    request = SampleRequest(purpose=Purpose.HUMAN_REVIEW, size=10, reviewer_location="DE")
    assert len(sample_draw(request=request, actor="client:t").items) == 2
    items = dict(ReviewItem.objects.values_list("recording__external_id", "pk"))
    review_item_audio_open(item_id=items["rec-a-heard"], caller=LINK).file.close()
    return {"items": items}


def test_a_bundle_proves_the_profiles_purges_and_reviews_and_shows_nothing_of_another(
    shared, platform, tmp_path
):
    bundle = platform.get("/api/v1/profiles/prof-a/evidence").json()

    result = _verify(tmp_path, bundle)

    assert result.returncode == 0, result.stderr
    assert [p["recordings"] for p in bundle["purges"]] == [
        [{"recording": "rec-a-old", "reason": "deletion_request"}]
    ]
    [review] = bundle["reviews"]
    assert review["review_item"] == shared["items"]["rec-a-heard"]
    assert review["recording"] == "rec-a-heard"
    assert review["reviewer_location"] == "DE"
    assert review["clip_fetched_at"] is not None
    text = json.dumps(bundle)
    for secret in ("prof-b", "rec-b-old", "rec-b-heard", shared["items"]["rec-b-heard"]):
        assert secret not in text
    # nor inside the leaves: the entries commit to prof-b's parts by their root only
    import base64

    for entry in bundle["entries"]:
        assert b"prof-b" not in base64.b64decode(entry["leaf"])


def _part_of(bundle: dict, kind: str) -> dict:
    import base64

    for entry in bundle["entries"]:
        if "part" in entry and f'"kind":"{kind}"'.encode() in base64.b64decode(entry["leaf"]):
            return entry
    raise AssertionError(kind)


def _tamper_part(bundle: dict) -> None:
    """Rewrite the part's bytes (a recording left out of the purge) and the plain field."""
    import base64

    entry = _part_of(bundle, "purge.batch")
    part = json.loads(base64.b64decode(entry["part"]["part"]))
    part["recordings"] = []
    entry["part"]["part"] = base64.b64encode(json.dumps(part).encode()).decode()
    bundle["purges"][0]["recordings"] = []


def _purge_field(bundle: dict) -> None:
    bundle["purges"][0]["recordings"][0]["recording"] = "rec-a-other"


def _drop_purge(bundle: dict) -> None:
    bundle["purges"] = []


def _drop_review(bundle: dict) -> None:
    bundle["reviews"] = []


def _review_location(bundle: dict) -> None:
    bundle["reviews"][0]["reviewer_location"] = "RO"


def _fetched(bundle: dict) -> None:
    bundle["reviews"][0]["clip_fetched_at"] = "2020-01-01T00:00:00+00:00"


def _path(bundle: dict) -> None:
    entry = _part_of(bundle, "sample.drawn")
    entry["part"]["index"] ^= 1


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (_tamper_part, "not the one the entry's parts_root commits to"),
        (_purge_field, "recordings are not what the part records"),
        (_drop_purge, "leave out (dropped)"),
        (_drop_review, "leave out (dropped)"),
        (_review_location, "reviewer_location is 'RO'"),
        (_fetched, "clip_fetched_at is not the access's time"),
        (_path, "not the one the entry's parts_root commits to"),
    ],
    ids=["part", "purge", "dropped purge", "dropped review", "location", "fetched", "path"],
)
def test_a_tampered_part_or_review_is_refused(shared, platform, tmp_path, tamper, named):
    bundle = platform.get("/api/v1/profiles/prof-a/evidence").json()
    tamper(bundle)

    result = _verify(tmp_path, bundle)

    assert result.returncode == 1
    assert named in result.stderr, result.stderr
