import pytest

from compliance.accounts.models import Profile
from compliance.actions.consent import consent_set
from compliance.consent.selectors import consent_current, consent_current_many
from tests.factories import AccountFactory, ConsentDefaultFactory, ProfileFactory

pytestmark = pytest.mark.django_db


def test_current_consent_of_many_profiles_is_each_ones_own_in_two_queries(
    django_assert_num_queries,
):
    ConsentDefaultFactory(jurisdiction="US", purpose="model_training", granted=True)
    ConsentDefaultFactory(jurisdiction="DE", purpose="human_review", granted=False)
    explicit = ProfileFactory(account=AccountFactory(jurisdiction="US"))
    consent_set(
        profile=explicit,
        purpose="human_review",
        granted=True,
        channel="app",
        notice_version="v2",
        actor="test",
    )
    by_default = ProfileFactory(account=AccountFactory(jurisdiction="DE"))
    nothing = ProfileFactory(account=AccountFactory(jurisdiction="FR"))
    profiles = list(
        Profile.objects.filter(pk__in=[explicit.pk, by_default.pk, nothing.pk]).select_related(
            "account"
        )
    )

    with django_assert_num_queries(2):
        many = consent_current_many(profiles=profiles)

    assert many == {p.pk: consent_current(profile=p) for p in profiles}
    sources = {
        p.external_id: [(c.purpose, c.granted, c.source) for c in many[p.pk]] for p in profiles
    }
    assert sources[explicit.external_id] == [
        ("human_review", True, "explicit"),
        ("model_training", True, "default"),
    ]
    assert sources[by_default.external_id] == [
        ("human_review", False, "default"),
        ("model_training", False, "none"),
    ]
    assert sources[nothing.external_id] == [
        ("human_review", False, "none"),
        ("model_training", False, "none"),
    ]
    assert many[explicit.pk][0].notice_version == "v2"
