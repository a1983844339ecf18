"""The strict fields refuse what DRF's own refuse, with DRF's words, only faster."""

import pytest
from rest_framework import serializers

from compliance.core.fields import ExternalIdField, StrictCharField


def _refusal(field: serializers.Field, value: str) -> list[tuple[str, str]]:
    with pytest.raises(serializers.ValidationError) as refused:
        field.run_validation(value)
    return [(str(detail), detail.code) for detail in refused.value.detail]


@pytest.mark.parametrize("value", ["a\ud800b", "\udfff", "ok \udbff\udc00 and \ud800"])
def test_a_lone_surrogate_is_refused_in_drfs_words(value):
    assert _refusal(StrictCharField(), value) == _refusal(serializers.CharField(), value)


def test_a_strict_text_holding_no_surrogate_passes():
    assert StrictCharField().run_validation("turn on the lights 💡") == "turn on the lights 💡"


@pytest.mark.parametrize("character", ["\x01", "\x1f", "\x7f", "\n"])
def test_an_external_id_with_a_control_character_is_refused(character):
    assert [code for _, code in _refusal(ExternalIdField(), f"r{character}1")] == ["not_a_segment"]


@pytest.mark.parametrize("value", ["r-1", "é\x80ü", "a b", "x" * 128])
def test_an_external_id_without_one_passes(value):
    assert ExternalIdField().run_validation(value) == value
