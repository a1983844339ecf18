"""The pages in English and German: the catalogue is complete for the privacy page,
the language comes from the saved setting, the switcher or the browser, and dates and
numbers are written as each language writes them."""

import re
from html.parser import HTMLParser

import pytest
from django.test import Client
from django.utils import translation

from compliance.web.models import PagePreference
from tests.web.catalog import po_entries, template_messages
from tests.web.conftest import PASSWORD

pytestmark = pytest.mark.django_db

PRIVACY_TEMPLATES = [
    "web/privacy/index.html",
    "web/privacy/recordings.html",
    "web/privacy/confirm_delete.html",
    "web/privacy/confirm_retention.html",
    "web/privacy/deletion.html",
    "security/sign_in.html",
    "404.html",
    "403.html",
    "403_csrf.html",
    "500.html",
]


@pytest.mark.parametrize("template", PRIVACY_TEMPLATES)
def test_every_message_of_the_privacy_pages_has_a_german_translation(template):
    entries = po_entries()
    wanted = template_messages(template)
    assert wanted, f"{template} asks for no translation at all"

    missing = [m for m in wanted if m not in entries]
    empty = [m for m in wanted if m in entries and not all(entries[m].msgstrs)]
    fuzzy = [m for m in wanted if m in entries and entries[m].fuzzy]

    assert not missing, f"not in locale/de/LC_MESSAGES/django.po (run makemessages): {missing}"
    assert not empty, f"no German for: {empty}"
    assert not fuzzy, f"fuzzy, so not used: {fuzzy}"


def test_the_catalogue_has_no_untranslated_or_fuzzy_message_at_all():
    bad = [e.msgid for e in po_entries().values() if e.fuzzy or not all(e.msgstrs)]

    assert bad == []


def test_the_compiled_catalogue_is_the_one_the_po_says():
    # A .po edited without compiling the .mo would leave the pages in English.
    with translation.override("de"):
        for entry in po_entries().values():
            if entry.plural is not None:
                got = translation.ngettext(entry.msgid, entry.plural, 1)
            elif entry.context is not None:
                got = translation.pgettext(entry.context, entry.msgid)
            else:
                got = translation.gettext(entry.msgid)
            assert got == entry.msgstrs[0], entry.msgid


class _Text(HTMLParser):
    """The text a reader sees (and hears): text nodes, labels, alt texts, placeholders."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in ("aria-label", "title", "alt", "placeholder") and value:
                self.parts.append(value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip -= 1

    def handle_data(self, data: str) -> None:
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def visible_text(html: str) -> list[str]:
    parser = _Text()
    parser.feed(html)
    return parser.parts


def english_msgids() -> set[str]:
    """Every English sentence of the catalogue that German changes (names that are
    the same in both languages, "Name" or "Israel", cannot tell the languages apart)."""
    words = set()
    for entry in po_entries().values():
        if entry.msgstrs[0] != entry.msgid and "%(" not in entry.msgid and "<" not in entry.msgid:
            words.add(entry.msgid)
    return words


def test_the_privacy_page_in_german_shows_no_english_message(owner_client, household):
    english = {m for m in english_msgids() if len(m) > 12}

    page = owner_client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="de").content.decode()

    assert '<html lang="de">' in page
    assert "Ihre Sprachaufnahmen und Ihr Datenschutz" in page
    leftovers = [text for text in visible_text(page) if text in english]
    assert leftovers == []


def test_the_recordings_page_in_german_writes_dates_the_german_way(owner_client, household):
    rec = household.recordings[0]

    page = owner_client.get(
        f"/privacy/profiles/{household.adult.external_id}/recordings/", HTTP_ACCEPT_LANGUAGE="de"
    ).content.decode()

    with translation.override("de"):
        from django.utils.dateformat import format as date_format

        expected = date_format(rec.recorded_at, "j. M Y, H:i")
    assert expected in page
    assert re.search(r"\d+ Aufnahmen aufbewahrt", page)
    assert "Von niemandem angehört" in page


def test_the_browser_language_picks_the_pages_language_and_english_is_the_default(
    owner_client, household
):
    german = owner_client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9")
    other = owner_client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="fr-FR")

    assert german["Content-Language"] == "de"
    assert "Accept-Language" in german["Vary"]
    assert other["Content-Language"] == "en"
    assert "Your voice recordings and your privacy" in other.content.decode()


def test_the_switcher_saves_the_choice_and_it_follows_the_person_to_a_new_browser(
    owner_client, household
):
    response = owner_client.post(
        "/language/", {"language": "de", "next": "/privacy/"}, HTTP_ACCEPT_LANGUAGE="en"
    )

    assert response.status_code == 302 and response["Location"] == "/privacy/"
    assert PagePreference.objects.get(user=household.user).language == "de"
    again = owner_client.get("/privacy/", HTTP_ACCEPT_LANGUAGE="en")
    assert again["Content-Language"] == "de"

    elsewhere = Client()
    signed_in = elsewhere.post(
        "/accounts/login/",
        {"username": household.user.username, "password": PASSWORD},
        HTTP_ACCEPT_LANGUAGE="en",
    )
    assert signed_in.status_code == 302
    page = elsewhere.get("/privacy/", HTTP_ACCEPT_LANGUAGE="en")
    assert page["Content-Language"] == "de"
    assert "Ihre Sprachaufnahmen" in page.content.decode()


def test_the_switcher_is_on_every_page_and_refuses_a_language_the_pages_do_not_speak(
    client, owner_client, household
):
    for url in ("/", "/accounts/login/", "/privacy/", "/no-such-page/"):
        html = (owner_client if url == "/privacy/" else client).get(url).content.decode()
        assert 'action="/language/"' in html, url
        assert '<option value="de" lang="de"' in html, url

    response = owner_client.post("/language/", {"language": "xx", "next": "/privacy/"})

    assert response.status_code == 302
    assert not PagePreference.objects.filter(user=household.user).exists()
    assert owner_client.get("/privacy/")["Content-Language"] == "en"


def test_the_switcher_needs_the_forms_csrf_token(household):
    client = Client(enforce_csrf_checks=True)

    response = client.post("/language/", {"language": "de", "next": "/"})

    assert response.status_code == 403


def test_the_api_stays_english_whatever_the_browser_asks(client):
    response = client.get("/api/v1/recordings/nothing", HTTP_ACCEPT_LANGUAGE="de")

    assert "Content-Language" not in response
    assert response.status_code in (401, 403)


def test_a_success_message_and_a_field_error_come_in_german(owner_client, household):
    done = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/consents/model_training/",
        {"granted": "true"},
        HTTP_ACCEPT="application/json",
        HTTP_ACCEPT_LANGUAGE="de",
    )
    refused = owner_client.post(
        f"/privacy/profiles/{household.adult.external_id}/deletions/",
        {"scope": "range", "date_from": "2026-03-02", "date_to": "2026-03-01"},
        HTTP_ACCEPT_LANGUAGE="de",
    )

    assert done.json()["message"].startswith("Erledigt: Aufnahmen von Profil prof-alice")
    assert "Modelltraining" in done.json()["message"]
    assert refused.status_code == 400
    assert "Der letzte Tag darf nicht vor dem ersten liegen." in refused.content.decode()


def test_numbers_are_grouped_as_each_language_groups_them():
    from compliance.web.templatetags.earshot_web import thousands

    with translation.override("en"):
        assert thousands(2000) == "2,000"
    with translation.override("de"):
        assert thousands(2000) == "2.000"
