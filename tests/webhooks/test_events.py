"""What each change that matters sends: purges as one event per batch and profile
listing the recordings, deletion requests with their receipt, holds with whom they
cover."""

from datetime import UTC, datetime

import pytest

from compliance.actions.profiles import profile_retention_set
from compliance.retention.deletion_requests import deletion_request_run
from compliance.retention.models import DeletionRequest
from compliance.retention.purge import purge_expired
from compliance.retention.services import (
    deletion_request_create,
    legal_hold_place,
    legal_hold_release,
    retention_policies_apply,
    retention_policy_create,
)
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.conftest import ingest  # noqa: F401 - a fixture

from .conftest import drain

pytestmark = [postgres_only(), pytest.mark.django_db(transaction=True)]


def _by_type(receiver, event_type: str) -> list[dict]:
    return [r.json for r in receiver.got if r.json["type"] == event_type]


def test_a_purge_sends_one_event_per_profile_listing_its_recordings(
    receiver,
    subscribe,
    ingest,  # noqa: F811 - the imported fixture
):
    subscribe(receiver.url, ["recording.purged"])
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    first, second = ProfileFactory(), ProfileFactory()
    doomed = {
        first.external_id: {ingest(first, days_ago=11).external_id for _ in range(3)},
        second.external_id: {ingest(second, days_ago=12).external_id for _ in range(2)},
    }
    ingest(first, days_ago=1)
    purge_expired()
    drain()

    events = _by_type(receiver, "recording.purged")
    assert len(events) == 2
    assert {e["data"]["profile"]: set(e["data"]["recordings"]) for e in events} == doomed
    assert {e["data"]["reason"] for e in events} == {"retention_policy"}


def test_a_finished_deletion_request_sends_its_receipt(
    receiver,
    subscribe,
    ingest,  # noqa: F811
):
    subscribe(receiver.url, ["deletion_request.completed", "recording.purged"])
    profile = ProfileFactory()
    recording = ingest(profile, days_ago=3)
    request = deletion_request_create(
        profile=profile, recorded_from=datetime(2020, 1, 1, tzinfo=UTC), recorded_to=None, actor="t"
    )
    deletion_request_run(public_id=request.public_id)
    drain()

    done = _by_type(receiver, "deletion_request.completed")
    assert len(done) == 1
    assert done[0]["data"]["request"] == request.public_id
    assert done[0]["data"]["receipt"] == DeletionRequest.objects.get(pk=request.pk).receipt
    assert done[0]["data"]["recordings_deleted"] == 1
    purged = _by_type(receiver, "recording.purged")
    assert [e["data"]["recordings"] for e in purged] == [[recording.external_id]]
    # the purge before the completion, as they committed
    types = [r.json["type"] for r in receiver.got]
    assert types.index("recording.purged") < types.index("deletion_request.completed")


def test_holds_and_retention_choices_name_their_profile(receiver, subscribe):
    subscribe(receiver.url)
    profile = ProfileFactory()
    hold = legal_hold_place(profile=profile, reason="case", case_reference="C-9", actor="t")
    legal_hold_release(hold=hold, actor="t")
    profile_retention_set(profile=profile, choice="3_months", actor="t")
    drain()

    got = {r.json["type"]: r.json["data"] for r in receiver.got}
    assert got["legal_hold.placed"]["profile"] == profile.external_id
    assert got["legal_hold.released"]["profile"] == profile.external_id
    assert got["retention_choice.changed"]["profile"] == profile.external_id
    assert got["retention_choice.changed"]["to"] == "3_months"


def test_every_event_sent_matches_its_documented_schema(
    receiver,
    subscribe,
    ingest,  # noqa: F811
):
    import jsonschema

    from compliance.actions.consent import consent_set
    from compliance.retention.services import retention_policy_retire
    from compliance.webhooks.events import EVENT_DATA_SCHEMAS, EVENT_TYPES
    from compliance.webhooks.services import subscription_ping

    assert set(EVENT_DATA_SCHEMAS) == set(EVENT_TYPES)
    subscription, _ = subscribe(receiver.url)
    profile = ProfileFactory()
    consent_set(
        profile=profile,
        purpose="human_review",
        granted=True,
        channel="app",
        notice_version="v1",
        actor="t",
    )
    policy = retention_policy_create(
        jurisdiction="*", category="audio", retention_days=10, actor="t"
    )
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    ingest(profile, days_ago=11)
    purge_expired()
    retention_policy_retire(policy=policy, actor="t")
    hold = legal_hold_place(profile=profile, reason="case", case_reference="C-9", actor="t")
    legal_hold_release(hold=hold, actor="t")
    profile_retention_set(profile=profile, choice="3_months", actor="t")
    request = deletion_request_create(
        profile=profile, recorded_from=None, recorded_to=None, actor="t"
    )
    deletion_request_run(public_id=request.public_id)
    subscription_ping(subscription=subscription, actor="t")
    drain()

    seen = set()
    for r in receiver.got:
        jsonschema.validate(r.json["data"], EVENT_DATA_SCHEMAS[r.json["type"]])
        seen.add(r.json["type"])
    assert seen >= set(EVENT_TYPES) - {"review_item.revoked"}


def test_each_converted_ledger_kind_becomes_a_documented_event_type():
    from compliance.webhooks.events import CONVERTERS, EVENT_TYPES

    assert {event_type for event_type, _ in CONVERTERS.values()} <= set(EVENT_TYPES)


@pytest.mark.parametrize("listening", [None, ["consent.changed"]])
def test_a_purge_nobody_listens_for_is_passed_over_without_reading_its_parts(
    receiver,
    subscribe,
    ingest,  # noqa: F811
    monkeypatch,
    listening,
):
    from compliance.ledger.models import LedgerEntry
    from compliance.webhooks import events
    from compliance.webhooks.models import DispatchCursor
    from compliance.webhooks.services import webhooks_dispatch

    if listening:
        subscribe(receiver.url, listening)
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    ingest(ProfileFactory(), days_ago=11)
    purge_expired()
    read = []
    monkeypatch.setattr(events, "entry_parts", lambda **kw: read.append(kw) or [])

    webhooks_dispatch(hint=False)

    assert read == []
    last = LedgerEntry.objects.order_by("-seq").values_list("seq", flat=True)[0]
    assert DispatchCursor.objects.get(pk=1).last_seq == last


def test_a_purge_someone_listens_for_is_read_from_its_parts(
    receiver,
    subscribe,
    ingest,  # noqa: F811
    monkeypatch,
):
    from compliance.webhooks import events
    from compliance.webhooks.services import webhooks_dispatch

    subscribe(receiver.url, ["consent.changed", "recording.purged"])
    retention_policy_create(jurisdiction="*", category="audio", retention_days=10, actor="t")
    retention_policy_create(jurisdiction="*", category="transcript", retention_days=10, actor="t")
    retention_policies_apply()
    ingest(ProfileFactory(), days_ago=11)
    purge_expired()
    real = events.entry_parts
    read = []
    monkeypatch.setattr(events, "entry_parts", lambda **kw: read.append(kw) or real(**kw))

    webhooks_dispatch(hint=False)

    assert len(read) == 1
