"""The edge's parsers: raw request values into the typed values the services take."""

import pytest

from compliance.core.errors import ApplicationError
from compliance.edge import parsing
from compliance.recordings.models import Flag


@pytest.mark.parametrize(
    ("value", "flags"),
    [
        (None, ()),
        ([], ()),
        (["sensitive"], ("sensitive",)),
        (["sensitive", "false_wake"], ("sensitive", "false_wake")),
        ({"sensitive": True, "false_wake": False}, ("sensitive",)),
        ({}, ()),
        ("sensitive, false_wake", ("sensitive", "false_wake")),
    ],
)
def test_flags_are_a_list_of_names_or_an_object_of_booleans(value, flags):
    assert parsing.flags(value, Flag) == flags


@pytest.mark.parametrize(
    "value",
    [
        {"sensitive": "yes"},
        {"sensitive": 1},
        {"loud": True},
        [1],
        [["sensitive"]],
        [{"sensitive": True}],
        5,
        True,
    ],
)
def test_other_flag_shapes_are_refused(value):
    with pytest.raises(ApplicationError) as refused:
        parsing.flags(value, Flag)

    assert "flags" in refused.value.fields


def test_flags_refused_by_shape_name_the_known_flags():
    with pytest.raises(ApplicationError) as refused:
        parsing.flags(5, Flag)

    assert refused.value.code == "validation_error"
    assert refused.value.message == 'A list of flag names, e.g. ["sensitive", "false_wake"].'


@pytest.mark.parametrize("value", [None, 5, ["text"], {"text": "x"}])
def test_text_that_is_not_a_string_is_refused_with_the_given_sentence(value):
    with pytest.raises(ApplicationError) as refused:
        parsing.text(value, field="text", message="A non-empty string.")

    assert (refused.value.code, refused.value.message) == (
        "validation_error",
        "A non-empty string.",
    )
    assert [f.code for f in refused.value.fields["text"]] == ["invalid"]


def test_text_keeps_a_string_as_it_is():
    assert parsing.text("  x ", field="text", message="m") == "  x "
