"""When the browser tests may run, skip, or fail: under CI=true a missing browser must
turn the run red rather than skip the browser tests."""

from pathlib import Path

import pytest

from tests.web.conftest import require_browser


@pytest.fixture
def chromium(tmp_path: Path) -> Path:
    path = tmp_path / "chromium"
    path.write_text("#!/bin/sh\n")
    return path


def test_with_chromium_and_playwright_the_browser_tests_run(chromium: Path):
    require_browser(playwright_found=True, ci=True, chromium=chromium)


def test_without_chromium_outside_ci_the_browser_tests_skip_with_the_install_command(
    tmp_path: Path,
):
    with pytest.raises(pytest.skip.Exception, match=r"apt-get install -y chromium"):
        require_browser(playwright_found=True, ci=False, chromium=tmp_path / "absent")


def test_without_chromium_under_ci_the_browser_tests_fail(tmp_path: Path):
    with pytest.raises(pytest.fail.Exception, match=r"CI=true"):
        require_browser(playwright_found=True, ci=True, chromium=tmp_path / "absent")


def test_without_playwright_under_ci_the_browser_tests_fail(chromium: Path):
    with pytest.raises(pytest.fail.Exception, match=r"playwright"):
        require_browser(playwright_found=False, ci=True, chromium=chromium)


def test_without_playwright_outside_ci_the_browser_tests_skip(chromium: Path):
    with pytest.raises(pytest.skip.Exception, match=r"playwright"):
        require_browser(playwright_found=False, ci=False, chromium=chromium)
