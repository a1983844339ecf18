from datetime import timedelta

import pytest
import time_machine
from django.core import signing
from django.utils import timezone

from compliance.sampling.links import (
    _SALT,
    LinkExpired,
    LinkInvalid,
    audio_link_verify,
    audio_links_sign,
)


def test_a_draws_signatures_are_those_of_djangos_timestamp_signer():
    ids = ["abc", "Zx_9-Q", "x" * 22]
    with time_machine.travel(timezone.now(), tick=False):
        sigs = audio_links_sign(ids)
        stock = {i: signing.TimestampSigner(salt=_SALT).sign(i)[len(i) + 1 :] for i in ids}

    assert sigs == stock


def test_a_signature_verifies_for_its_item_only_and_only_for_minutes():
    sig = audio_links_sign(["item-a"])["item-a"]

    audio_link_verify("item-a", sig)
    with pytest.raises(LinkInvalid):
        audio_link_verify("item-b", sig)
    with pytest.raises(LinkInvalid):
        audio_link_verify("item-a", sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    with pytest.raises(LinkInvalid):
        audio_link_verify("item-a", "")
    with (
        time_machine.travel(timezone.now() + timedelta(minutes=6)),
        pytest.raises(LinkExpired),
    ):
        audio_link_verify("item-a", sig)


def test_the_link_lifetime_follows_the_setting(settings):
    settings.REVIEW_LINK_SECONDS = 30
    sig = audio_links_sign(["item-a"])["item-a"]

    with (
        time_machine.travel(timezone.now() + timedelta(seconds=45)),
        pytest.raises(LinkExpired),
    ):
        audio_link_verify("item-a", sig)
