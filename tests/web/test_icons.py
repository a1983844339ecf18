"""Icons are inline SVG with a text alternative, never emoji: an emoji shows as an
empty box on a machine without an emoji font, and says nothing to a screen reader
when it is hidden from it."""

import re
from pathlib import Path

import pytest
from django.conf import settings

ROOT = Path(settings.BASE_DIR)
# Emoji and the symbol blocks that fonts draw as emoji (pictographs, dingbats, the
# misc-technical hourglasses and watches), and the variation selector that asks for
# emoji presentation. Arrows (U+2190..U+21FF) are ordinary text and are allowed.
EMOJI = re.compile(
    "[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u231a\u231b\u23e9-\u23fa\ufe0f\u200d]"
)


def page_sources() -> list[Path]:
    web = ROOT / "compliance" / "web"
    return sorted(
        [
            *(ROOT / "templates").rglob("*.html"),
            *web.rglob("*.css"),
            *web.rglob("*.js"),
            *web.rglob("*.py"),
        ]
    )


def test_the_scan_finds_the_templates():
    names = {p.name for p in page_sources()}
    assert {"base.html", "ledger.html", "earshot.css"} <= names


def test_the_emoji_pattern_catches_the_marks_once_used():
    for mark in ["\u2705", "\u26a0\ufe0f", "\u23f3", "\u2713", "\U0001f512"]:
        assert EMOJI.search(mark), mark
    assert not EMOJI.search("\u2190 Newer, Older \u2192, 18\u202fmonths \u2013 caf\u00e9")


def test_no_template_stylesheet_or_page_code_contains_an_emoji():
    found = [
        f"{path.relative_to(ROOT)}:{n}: {line.strip()[:80]}"
        for path in page_sources()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if EMOJI.search(line)
    ]
    assert found == []


@pytest.mark.django_db
def test_the_ledger_status_mark_is_an_svg_with_a_text_alternative(officer_client, household):
    body = officer_client.get("/officer/ledger/").content.decode()

    marks = re.findall(r"<svg[^>]*class=\"icon[^\"]*\"[^>]*>", body)
    assert marks
    for mark in marks:
        assert 'role="img"' in mark
        assert re.search(r'aria-label="[^"]+"', mark)


@pytest.mark.django_db
def test_the_site_has_an_icon_linked_from_its_pages_and_at_favicon_ico(client):
    page = client.get("/").content.decode()
    favicon = client.get("/favicon.ico")

    assert '<link rel="icon" href="/static/web/earshot.svg" type="image/svg+xml">' in page
    assert favicon.status_code == 301
    assert favicon["Location"] == "/static/web/earshot.svg"
    assert (ROOT / "compliance/web/static/web/earshot.svg").read_text().startswith("<svg")
