from datetime import timedelta

import factory
from django.utils import timezone

from compliance.accounts.models import Account, Profile
from compliance.consent.services import consent_states_initialise
from compliance.recordings.models import Recording


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    external_id = factory.Sequence(lambda n: f"acct-{n}")
    jurisdiction = "US"


class ProfileFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Profile
        skip_postgeneration_save = True

    external_id = factory.Sequence(lambda n: f"prof-{n}")
    account = factory.SubFactory(AccountFactory)
    is_child = False

    @factory.post_generation
    def consent_states(self, create: bool, extracted: object, **kwargs: object) -> None:
        if create:
            consent_states_initialise(profile=self)


class RecordingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Recording

    external_id = factory.Sequence(lambda n: f"rec-{n}")
    profile = factory.SubFactory(ProfileFactory)
    recorded_at = factory.LazyFunction(lambda: timezone.now() - timedelta(days=1))


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "auth.User"

    username = factory.Sequence(lambda n: f"user-{n}")


class ConsentDefaultFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "consent.ConsentDefault"

    jurisdiction = "US"
    purpose = "human_review"
    granted = True


class TransferRuleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "transfers.TransferRule"

    jurisdiction = "DE"
    reviewer_location = "IE"


class ReviewerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "sampling.Reviewer"

    user = factory.SubFactory(UserFactory)
    location = "DE"


class ArtefactFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = "recordings.Artefact"

    recording = factory.SubFactory(RecordingFactory)
    category = "audio"
