"""Every page in a real Chromium, signed out, as an end user and as an officer, in
English and German, on a desktop and at 390 px: axe-core finds no serious or critical
violation, and each view is photographed into $TEST_OUTPUT_DIR/screenshots/pages/
(test-output/screenshots/pages/ by default; the README names it).

axe-core comes with the axe-playwright-python package (its axe.min.js, MPL-2.0, is
injected into the page): nothing is fetched from the network.
"""

import os
import re
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from compliance.accounts.services import profile_rename
from compliance.retention import deletion_requests
from compliance.retention.services import deletion_request_create
from compliance.sampling.models import ReviewItem
from compliance.webhooks.models import Subscription
from compliance.webhooks.services import subscription_create
from tests.web import test_e2e
from tests.web.conftest import make_household, make_officer, seed_history
from tests.web.test_e2e import sign_in_by_cookie

try:
    from axe_playwright_python.sync_playwright import Axe
except ImportError:
    Axe = None

pytestmark = pytest.mark.django_db(transaction=True)

# The browser and its check, shared with the other browser tests (one Chromium a module).
browser = test_e2e.browser
_browser_present = test_e2e._browser_present

VIEWPORTS = {
    "desktop": {"viewport": {"width": 1280, "height": 900}},
    "phone": {"viewport": {"width": 390, "height": 844}, "is_mobile": True},
}
LANGUAGES = {"en": "en-GB", "de": "de-DE"}
# What the pages must never have; moderate and minor findings are reported, not fatal.
FATAL_IMPACTS = ("serious", "critical")


@pytest.fixture(scope="module")
def axe() -> Any:
    if Axe is None:
        if os.environ.get("CI") == "true":
            pytest.fail("axe-playwright-python is missing (pip install -r requirements-dev.txt)")
        pytest.skip("needs axe-playwright-python (pip install -r requirements-dev.txt)")
    return Axe()


@pytest.fixture
def pages_dir(output_dir: Path) -> Path:
    folder = output_dir / "screenshots" / "pages"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def serious_violations(axe: Any, page: Any) -> list[str]:
    results = axe.run(page)
    found = []
    for violation in results.response["violations"]:
        if violation.get("impact") in FATAL_IMPACTS:
            targets = [", ".join(node["target"]) for node in violation["nodes"]][:5]
            found.append(f"{violation['id']} ({violation['impact']}): {targets}")
    return found


# The elements that stick out to the right, to say what makes a page scroll sideways.
WIDEST = """() => [...document.querySelectorAll('body *')]
    .filter(e => e.getBoundingClientRect().right > document.documentElement.clientWidth + 1)
    .filter(e => { for (let a = e.parentElement; a && a !== document.body; a = a.parentElement)
        { if (getComputedStyle(a).overflowX !== 'visible') return false; } return true; })
    .slice(-5).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
        + (e.className && typeof e.className === 'string' ? '.' + e.className : '')
        + ' in ' + ((e.closest('section, figure, details') || {}).id || '')
        + ' ' + Math.round(e.getBoundingClientRect().right))"""

Visit = tuple[str, str | Callable[[Any], None]]  # (name, path or a function that gets there)


def tour(
    browser: Any,
    live_server: Any,
    axe: Any,
    pages_dir: Path,
    *,
    role: str,
    language: str,
    visits: list[Visit],
    sign_in: Callable[[Any], None] | None = None,
    expect_lang: bool = True,
) -> None:
    problems: dict[str, list[str]] = {}
    for viewport, options in VIEWPORTS.items():
        context = browser.new_context(
            base_url=live_server.url, locale=LANGUAGES[language], **options
        )
        context.set_default_timeout(15_000)
        try:
            if sign_in is not None:
                sign_in(context)
            page = context.new_page()
            for name, where in visits:
                if isinstance(where, str):
                    page.goto(where)
                else:
                    where(page)
                page.wait_for_load_state("load")
                if expect_lang:
                    assert page.locator("html").get_attribute("lang") == language, name
                page.screenshot(
                    path=str(pages_dir / f"{role}-{language}-{name}-{viewport}.png"),
                    full_page=True,
                )
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                if overflow > 0:
                    wide = page.evaluate(WIDEST)
                    pytest.fail(f"{name} scrolls sideways by {overflow}px ({viewport}): {wide}")
                found = serious_violations(axe, page)
                if found:
                    problems[f"{name} ({viewport})"] = found
        finally:
            context.close()
    assert problems == {}, problems


def _household() -> Any:
    home = make_household("alice", jurisdiction="DE")
    profile_rename(profile=home.adult, display_name="Kitchen speaker")
    deletion = deletion_request_create(
        profile=home.child, recorded_from=None, recorded_to=None, actor="test"
    )
    home.deletion = deletion
    # The longest words the recordings page shows, which must wrap on a phone: who heard
    # a clip and where, and a finished request for one recording in the table of them.
    now = timezone.now()
    for n, (state, closed_at) in enumerate([("delivered", None), ("done", now)]):
        ReviewItem.objects.create(
            id=f"item-{n}",
            recording=home.recordings[n],
            purpose="human_review",
            reviewer_location="US",
            state=state,
            created_at=now - timedelta(hours=2),
            expires_at=now + timedelta(hours=6),
            delivered_at=now - timedelta(hours=1),
            closed_at=closed_at,
        )
    long_ago = now - timedelta(days=3000)
    one = deletion_request_create(
        profile=home.adult, recorded_from=long_ago, recorded_to=long_ago, actor="test"
    )
    deletion_requests.deletion_request_run(public_id=one.public_id)
    return home


def _confirm_delete_all(page: Any) -> None:
    page.goto("/privacy/profiles/prof-alice/recordings/")
    page.locator("form[aria-labelledby=all-title] button").click()


def _confirm_retention(page: Any) -> None:
    page.goto("/privacy/")
    section = page.locator("#profile-prof-alice")
    section.locator("input[name=choice][value=dont_save]").check()
    section.locator("form[action$='/retention/'] button[type=submit]").click()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_pages_signed_out_have_no_serious_accessibility_problem(
    browser, live_server, axe, pages_dir, language
):
    tour(
        browser,
        live_server,
        axe,
        pages_dir,
        role="signed-out",
        language=language,
        visits=[
            ("home", "/"),
            ("sign-in", "/accounts/login/"),
            ("not-found", "/no-such-page/"),
        ],
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_end_users_pages_have_no_serious_accessibility_problem(
    browser, live_server, axe, pages_dir, language
):
    home = _household()

    tour(
        browser,
        live_server,
        axe,
        pages_dir,
        role="end-user",
        language=language,
        sign_in=lambda context: sign_in_by_cookie(context, live_server, home.user),
        visits=[
            ("home", "/"),
            ("privacy", "/privacy/"),
            ("recordings", "/privacy/profiles/prof-alice/recordings/"),
            ("confirm-delete", _confirm_delete_all),
            ("confirm-retention", _confirm_retention),
            ("deletion-status", f"/privacy/deletions/{home.deletion.public_id}/"),
            ("officer-refused", "/officer/"),
        ],
    )


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_officers_pages_have_no_serious_accessibility_problem(
    browser, live_server, axe, pages_dir, language, settings
):
    seed_history(timezone.now())
    officer, device = make_officer("olivia")
    # A failing subscription: the webhooks page has a row, its forms and both alerts' kind.
    settings.WEBHOOKS_ALLOW_HTTP = True
    settings.WEBHOOKS_ALLOW_PRIVATE_NETWORKS = True
    failing, _ = subscription_create(
        url="http://127.0.0.1:9/hook",
        events=["*"],
        description="annotation tool",
        holds_copies=True,
        actor="test",
    )
    Subscription.objects.filter(pk=failing.pk).update(status="failing")

    tour(
        browser,
        live_server,
        axe,
        pages_dir,
        role="officer",
        language=language,
        sign_in=lambda context: sign_in_by_cookie(context, live_server, officer, device),
        visits=[
            ("dashboard", "/officer/"),
            ("policies", "/officer/policies/"),
            ("consent-defaults", "/officer/consent-defaults/"),
            ("transfer-rules", "/officer/transfer-rules/"),
            ("holds", "/officer/holds/"),
            ("hold-search", "/officer/holds/search/?q=h1"),
            ("ledger", "/officer/ledger/"),
            ("webhooks", "/officer/webhooks/"),
        ],
    )


def test_the_language_switcher_changes_the_page_and_keeps_the_place(browser, live_server):
    home = make_household("bea")
    context = browser.new_context(base_url=live_server.url, locale="en-GB")
    try:
        sign_in_by_cookie(context, live_server, home.user)
        page = context.new_page()
        page.goto("/privacy/profiles/prof-bea/recordings/")
        page.select_option("#language-select", "de")
        page.get_by_role("button", name="Change language").click()
        page.wait_for_url(re.compile(r"/privacy/profiles/prof-bea/recordings/$"))

        assert page.locator("html").get_attribute("lang") == "de"
        assert page.get_by_role("heading", level=1).inner_text().startswith("Aufnahmen von")
    finally:
        context.close()


def test_chart_axis_text_is_at_least_12_pixels_on_a_desktop_and_a_phone(browser, live_server):
    seed_history(timezone.now())
    officer, device = make_officer("otto")
    for options in VIEWPORTS.values():
        context = browser.new_context(base_url=live_server.url, **options)
        try:
            sign_in_by_cookie(context, live_server, officer, device)
            page = context.new_page()
            page.goto("/officer/")
            smallest = page.evaluate(
                """() => Math.min(...[...document.querySelectorAll('.chart svg text')].map(t => {
                    const svg = t.ownerSVGElement;
                    const scale = svg.getScreenCTM().a;
                    return parseFloat(getComputedStyle(t).fontSize) * scale;
                }))"""
            )
            assert smallest >= 12, f"axis text {smallest:.1f}px at {options['viewport']}"
        finally:
            context.close()


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_officer_menu_fits_on_one_line_on_a_desktop(browser, live_server, language):
    officer, device = make_officer("ona")
    context = browser.new_context(
        base_url=live_server.url, locale=LANGUAGES[language], **VIEWPORTS["desktop"]
    )
    try:
        sign_in_by_cookie(context, live_server, officer, device)
        page = context.new_page()
        page.goto("/officer/")
        tops = page.evaluate(
            "() => [...document.querySelectorAll('.subnav li')]"
            ".map(li => [li.innerText, Math.round(li.getBoundingClientRect().top)])"
        )
    finally:
        context.close()

    assert len(tops) == 7
    assert {top for _, top in tops} == {tops[0][1]}, tops
