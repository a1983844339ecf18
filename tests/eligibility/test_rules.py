"""The eligibility rule: the decision for one and the SQL fragments for many, and proof
that they agree with each other and with a plain-Python statement of the
rule in docs/domain.md."""

import re
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compliance.accounts.models import Account, Profile
from compliance.consent.models import ConsentDefault, ConsentState, Purpose
from compliance.eligibility.rules import (
    PURPOSE_NEEDS,
    EligibleSql,
    Facts,
    Reason,
    decide,
    eligible_sql,
    facts_for,
)
from compliance.recordings.models import Artefact, Recording, RecordingState
from compliance.transfers.models import TransferRule
from tests.conftest import postgres_only

HUMAN = Purpose.HUMAN_REVIEW
TRAINING = Purpose.MODEL_TRAINING


def facts(**overrides: object) -> Facts:
    base = {
        "external_id": "r",
        "active": True,
        "sensitive": False,
        "false_wake": False,
        "is_child": False,
        "jurisdiction": "DE",
        "consent": True,
        "consent_default": None,
        "transfer_rule": False,
    }
    return Facts(**{**base, **overrides})


@pytest.mark.parametrize(
    ("overrides", "purpose", "location", "reasons"),
    [
        ({}, HUMAN, None, []),
        ({}, HUMAN, "DE", []),
        ({"active": False}, HUMAN, None, [Reason.PURGED]),
        ({"active": False, "consent": False}, TRAINING, None, [Reason.PURGED]),
        ({"retention_expired": True}, TRAINING, None, [Reason.RETENTION_EXPIRED]),
        ({"is_child": True}, HUMAN, None, [Reason.CHILD_PROFILE]),
        ({"is_child": True}, TRAINING, None, []),
        ({"sensitive": True}, HUMAN, None, [Reason.SENSITIVE]),
        ({"sensitive": True}, TRAINING, None, []),
        ({"false_wake": True}, HUMAN, None, [Reason.FALSE_WAKE]),
        ({"false_wake": True}, TRAINING, None, []),
        ({"consent": None}, HUMAN, None, [Reason.NO_CONSENT]),
        ({"consent": None, "consent_default": False}, HUMAN, None, [Reason.NO_CONSENT]),
        ({"consent": None, "consent_default": True}, HUMAN, None, []),
        ({"consent": False}, HUMAN, None, [Reason.CONSENT_WITHDRAWN]),
        ({"consent": False, "consent_default": True}, HUMAN, None, [Reason.CONSENT_WITHDRAWN]),
        ({}, HUMAN, "US", [Reason.TRANSFER_NOT_ALLOWED]),
        ({"transfer_rule": True}, HUMAN, "US", []),
        ({}, TRAINING, "US", []),
        (
            {"is_child": True, "sensitive": True, "false_wake": True, "consent": False},
            HUMAN,
            "US",
            [
                Reason.CHILD_PROFILE,
                Reason.SENSITIVE,
                Reason.FALSE_WAKE,
                Reason.CONSENT_WITHDRAWN,
                Reason.TRANSFER_NOT_ALLOWED,
            ],
        ),
    ],
)
def test_decision_names_every_failed_condition(overrides, purpose, location, reasons):
    assert decide(facts(**overrides), purpose=purpose, reviewer_location=location) == reasons


# --- the decision and the filter agree, on generated data -------------------------

JURISDICTIONS = ["DE", "US", "GB"]
TRISTATE = st.sampled_from([None, True, False])


@dataclass(frozen=True)
class ProfileSpec:
    jurisdiction: str
    is_child: bool
    consent: dict[str, bool | None]


# an artefact: absent, or (state, expiry relative to now: None, past, exactly now, future)
ARTEFACT = st.one_of(
    st.none(),
    st.tuples(st.sampled_from(["active", "purged"]), st.sampled_from([None, -1, 0, 1])),
)


@dataclass(frozen=True)
class RecordingSpec:
    profile: int
    purged: bool
    sensitive: bool
    false_wake: bool
    audio: tuple | None
    transcript: tuple | None


@st.composite
def worlds(draw: st.DrawFn) -> tuple:
    profiles = draw(
        st.lists(
            st.builds(
                ProfileSpec,
                jurisdiction=st.sampled_from(JURISDICTIONS),
                is_child=st.booleans(),
                consent=st.fixed_dictionaries({HUMAN: TRISTATE, TRAINING: TRISTATE}),
            ),
            min_size=1,
            max_size=6,
        )
    )
    recordings = draw(
        st.lists(
            st.builds(
                RecordingSpec,
                profile=st.integers(0, len(profiles) - 1),
                purged=st.booleans(),
                sensitive=st.booleans(),
                false_wake=st.booleans(),
                audio=ARTEFACT,
                transcript=ARTEFACT,
            ),
            min_size=1,
            max_size=12,
        )
    )
    defaults = draw(
        st.dictionaries(
            st.tuples(st.sampled_from(JURISDICTIONS), st.sampled_from([HUMAN, TRAINING])),
            st.booleans(),
        )
    )
    transfers = draw(
        st.sets(st.tuples(st.sampled_from(JURISDICTIONS), st.sampled_from([*JURISDICTIONS, "FR"])))
    )
    return profiles, recordings, defaults, transfers


NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def _expiry(offset: int | None) -> datetime | None:
    return None if offset is None else NOW + timedelta(hours=offset)


def _store(profiles, recordings, defaults, transfers) -> list[str]:
    stored = []
    for i, spec in enumerate(profiles):
        account = Account.objects.create(external_id=f"a{i}", jurisdiction=spec.jurisdiction)
        profile = Profile.objects.create(
            external_id=f"p{i}", account=account, is_child=spec.is_child
        )
        for purpose, granted in spec.consent.items():
            ConsentState.objects.create(profile=profile, purpose=purpose, granted=granted)
        stored.append(profile)
    ids = []
    for i, spec in enumerate(recordings):
        recording = Recording.objects.create(
            external_id=f"r{i}",
            profile=stored[spec.profile],
            recorded_at="2026-01-01T00:00:00Z",
            state=RecordingState.PURGED if spec.purged else RecordingState.ACTIVE,
            sensitive=spec.sensitive,
            false_wake=spec.false_wake,
        )
        for category, artefact in (("audio", spec.audio), ("transcript", spec.transcript)):
            if artefact is not None:
                Artefact.objects.create(
                    recording=recording,
                    category=category,
                    state=artefact[0],
                    expires_at=_expiry(artefact[1]),
                )
        ids.append(f"r{i}")
    for (jurisdiction, purpose), granted in defaults.items():
        ConsentDefault.objects.create(jurisdiction=jurisdiction, purpose=purpose, granted=granted)
    for jurisdiction, location in transfers:
        TransferRule.objects.create(jurisdiction=jurisdiction, reviewer_location=location)
    return ids


def _by_the_book(profile, recording, defaults, transfers, purpose, location) -> bool:
    """The rule of docs/domain.md, stated directly over the generated world."""
    human = purpose == HUMAN
    needed = [recording.audio] if human else [recording.audio, recording.transcript]
    expired = any(
        a is not None and (a[0] != "active" or (a[1] is not None and a[1] <= 0)) for a in needed
    )
    consent = profile.consent[purpose]
    granted = (
        consent if consent is not None else defaults.get((profile.jurisdiction, purpose), False)
    )
    return (
        not recording.purged
        and not expired
        and not (human and (profile.is_child or recording.sensitive or recording.false_wake))
        and granted
        and not (
            human
            and location is not None
            and location != profile.jurisdiction
            and (profile.jurisdiction, location) not in transfers
        )
    )


@pytest.mark.django_db
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_the_decision_agrees_with_the_rule(world):
    profiles, recordings, defaults, transfers = world
    with transaction.atomic():
        ids = _store(profiles, recordings, defaults, transfers)
        for purpose in (HUMAN, TRAINING):
            for location in (None, "DE", "US", "FR"):
                expected = {
                    ids[i]
                    for i, rec in enumerate(recordings)
                    if _by_the_book(
                        profiles[rec.profile], rec, defaults, transfers, purpose, location
                    )
                }
                known = facts_for(ids, purpose=purpose, reviewer_location=location, now=NOW)
                decided = {
                    rid
                    for rid in ids
                    if not decide(known[rid], purpose=purpose, reviewer_location=location)
                }
                assert decided == expected, (purpose, location)
        transaction.set_rollback(True)


def _select(rule: EligibleSql) -> list[str]:
    """The external ids of the recordings the fragments keep, one row each."""
    sql = (
        f"SELECT r.external_id FROM {Recording._meta.db_table} r {' '.join(rule.joins)}"  # noqa: S608
        f" WHERE {' AND '.join(rule.where)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*rule.join_params, *rule.where_params])
        return [row[0] for row in cursor.fetchall()]


def _usable(artefact: tuple | None) -> bool:
    """Present, active and within its retention at NOW."""
    return (
        artefact is not None
        and artefact[0] == "active"
        and (artefact[1] is None or artefact[1] > 0)
    )


@pytest.mark.django_db
@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds())
def test_the_rule_sql_selects_exactly_what_decide_finds_eligible(world):
    """For each purpose and for all of them at once (eligible for each), with and
    without a reviewer location, and with artefacts required present."""
    profiles, recordings, defaults, transfers = world
    with transaction.atomic():
        ids = _store(profiles, recordings, defaults, transfers)
        for location in (None, "DE", "US", "FR"):
            decided = {}
            for purpose in (HUMAN, TRAINING):
                known = facts_for(ids, purpose=purpose, reviewer_location=location, now=NOW)
                decided[purpose] = {
                    rid
                    for rid in ids
                    if not decide(known[rid], purpose=purpose, reviewer_location=location)
                }
            for purposes in ([HUMAN], [TRAINING], [HUMAN, TRAINING]):
                eligible = set.intersection(*(decided[purpose] for purpose in purposes))
                for present in ((), ("audio",), ("audio", "transcript")):
                    expected = {
                        ids[i]
                        for i, rec in enumerate(recordings)
                        if ids[i] in eligible
                        and all(_usable(getattr(rec, category)) for category in present)
                    }
                    selected = _select(
                        eligible_sql(
                            purposes=purposes, reviewer_location=location, now=NOW, present=present
                        )
                    )
                    assert len(selected) == len(set(selected)), (purposes, location, present)
                    assert set(selected) == expected, (purposes, location, present)
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_recording_whose_profile_was_deleted_is_eligible_neither_way():
    """Even where its jurisdiction's default grants every purpose: without a profile it
    has no consent. The recording's copy of the jurisdiction is cleared with the profile
    (tests/recordings/test_models.py), and both forms of the rule also ask for a
    profile themselves."""
    account = Account.objects.create(external_id="a", jurisdiction="DE")
    profile = Profile.objects.create(external_id="p", account=account, is_child=False)
    Recording.objects.create(external_id="r", profile=profile, recorded_at=NOW)
    for purpose in (HUMAN, TRAINING):
        ConsentDefault.objects.create(jurisdiction="DE", purpose=purpose, granted=True)

    profile.delete()

    for purpose in (HUMAN, TRAINING):
        known = facts_for(["r"], purpose=purpose, now=NOW)
        assert decide(known["r"], purpose=purpose) == ["no_consent"]
        assert _select(eligible_sql(purposes=[purpose], now=NOW)) == []


def test_the_rule_sql_needs_a_purpose():
    with pytest.raises(ValueError, match="purpose"):
        eligible_sql(purposes=[], now=NOW)


@pytest.mark.django_db
def test_facts_are_read_in_one_query(django_assert_num_queries):
    from tests.factories import RecordingFactory

    ids = [RecordingFactory().external_id for _ in range(5)]
    with django_assert_num_queries(1):
        facts_for(ids, purpose=HUMAN, reviewer_location="US")


@pytest.mark.django_db(transaction=True)
def test_facts_survive_a_new_database_connection():
    """The facts cursor is kept with its connection; a reconnect must not reuse it."""
    from django.db import connection

    from tests.factories import RecordingFactory

    recording = RecordingFactory()
    first = facts_for([recording.external_id], purpose=HUMAN)
    connection.close()
    assert facts_for([recording.external_id], purpose=HUMAN) == first
    assert set(first) == {recording.external_id}


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_a_batch_of_many_chunks_spread_over_connections_answers_every_id(monkeypatch):
    """Outside a transaction the chunks go to FACTS_PARALLEL connections; the answer
    is the one a single connection gives, id for id."""
    from compliance.eligibility import rules
    from tests.factories import RecordingFactory

    monkeypatch.setattr(rules, "FACTS_CHUNK", 3)
    in_pool = []
    read_in_pool = rules._read_facts_in_pool

    def spy(chunks, *args):
        in_pool.append((threading.current_thread().name, len(chunks)))
        return read_in_pool(chunks, *args)

    monkeypatch.setattr(rules, "_read_facts_in_pool", spy)
    ids = [RecordingFactory().external_id for _ in range(20)] + ["rec-missing"]
    spread = facts_for(ids, purpose=HUMAN, reviewer_location="US")
    assert [(name.startswith("eligibility-facts"), n) for name, n in in_pool] == [(True, 3)]
    with transaction.atomic():  # inside a transaction: one connection only
        single = facts_for(ids, purpose=HUMAN, reviewer_location="US")
    assert len(in_pool) == 1
    assert spread == single
    assert set(spread) == set(ids) - {"rec-missing"}


@postgres_only()
@pytest.mark.django_db(transaction=True)
def test_a_pool_connection_that_failed_is_replaced(monkeypatch):
    from compliance.eligibility import rules
    from tests.factories import RecordingFactory

    monkeypatch.setattr(rules, "FACTS_CHUNK", 2)
    ids = [RecordingFactory().external_id for _ in range(6)]
    first = facts_for(ids, purpose=HUMAN)

    def break_connection():
        from django.db import connection

        connection.ensure_connection()
        connection.connection.close()  # as a server restart would
        connection.errors_occurred = True  # as Django marks it on the failed query

    rules._facts_pool().submit(break_connection).result()
    assert facts_for(ids, purpose=HUMAN) == first


@postgres_only()
@pytest.mark.django_db
@pytest.mark.parametrize(
    ("purpose", "indexes"),
    [
        (HUMAN, ["artefact_one_audio"]),
        (TRAINING, ["artefact_one_audio", "artefact_one_transcript"]),
    ],
)
def test_the_prepared_facts_query_reads_each_category_from_its_own_covering_index(purpose, indexes):
    """The facts query is prepared and planned once, for any parameters: a category's
    partial index serves that generic plan only if the category is written into the
    statement. With the category as a parameter the plan falls back to the index of
    every artefact and visits the table."""
    from compliance.eligibility import rules

    sql = rules._facts_sql("postgresql", 1, True, PURPOSE_NEEDS[purpose])
    numbered = iter(range(1, sql.count("%s") + 1))
    prepared = re.sub("%s", lambda _: f"${next(numbered)}", sql)
    now = connection.ops.adapt_datetimefield_value(datetime.now(UTC))
    params = ["US", *["active", now] * len(PURPOSE_NEEDS[purpose]), purpose, purpose, ["r"]]
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL plan_cache_mode = force_generic_plan")
        cursor.execute("SET LOCAL enable_seqscan = off")  # the test's tables are tiny
        cursor.execute(f"PREPARE facts_plan AS {prepared}")
        cursor.execute(f"EXPLAIN EXECUTE facts_plan({', '.join(['%s'] * len(params))})", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("DEALLOCATE facts_plan")

    covered = re.findall(r"Index Only Scan using (\w+) on recordings_artefact", plan)
    assert covered == indexes, plan
    assert plan.count(" on recordings_artefact") == len(indexes), plan
