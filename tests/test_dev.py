"""dev.py's decisions that do not need a child process: what it exits with and what it
tells the user about the browser. It runs before any dependency is installed, so it is
imported here as the plain module it is."""

from pathlib import Path

import pytest

import dev


def test_no_test_collected_is_reported_as_a_failure_with_its_own_exit_code():
    code, message = dev.pytest_exit_code(5)

    assert code == 5
    assert message is not None
    assert "no tests" in message
    assert "failure" in message


@pytest.mark.parametrize("code", [0, 1, 2, 3, 4])
def test_other_pytest_exit_codes_pass_through_without_a_message(code: int):
    assert dev.pytest_exit_code(code) == (code, None)


def test_cmd_test_exits_non_zero_when_pytest_collected_nothing(monkeypatch, tmp_path: Path):
    monkeypatch.setenv("TEST_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(dev, "ensure_venv", lambda _requirements: Path("python"))
    monkeypatch.setattr(dev, "choose_test_services", lambda: "earshot tests: stubbed")
    monkeypatch.setattr(dev, "run_foreground", lambda _command: 5)

    assert dev.cmd_test(["tests/nowhere"]) == 5


def test_a_missing_chromium_is_named_with_the_command_that_installs_it(tmp_path: Path):
    notice = dev.chromium_notice(chromium=tmp_path / "chromium", ci=False)

    assert notice is not None
    assert "apt-get install -y chromium" in notice
    assert "skip" in notice


def test_under_ci_a_missing_chromium_is_announced_as_a_failure(tmp_path: Path):
    notice = dev.chromium_notice(chromium=tmp_path / "chromium", ci=True)

    assert notice is not None
    assert "FAIL" in notice


def test_a_present_chromium_needs_no_notice(tmp_path: Path):
    browser = tmp_path / "chromium"
    browser.write_text("#!/bin/sh\n")

    assert dev.chromium_notice(chromium=browser, ci=True) is None


def test_dev_py_never_installs_system_packages(monkeypatch, tmp_path: Path):
    """Given no Chromium, running as root with apt-get on the PATH,
    when `dev.py test` runs, then no apt-get (or any other child but pytest) is started."""
    started: list[list[str]] = []

    def record(command, *args, **kwargs):
        started.append(list(command))
        raise AssertionError(f"dev.py started {command!r}")

    monkeypatch.setenv("TEST_OUTPUT_DIR", str(tmp_path))
    monkeypatch.setattr(dev, "CHROMIUM", tmp_path / "chromium")
    monkeypatch.setattr(dev.os, "geteuid", lambda: 0)
    monkeypatch.setattr(dev.shutil, "which", lambda _name: "/usr/bin/apt-get")
    monkeypatch.setattr(dev.subprocess, "run", record)
    monkeypatch.setattr(dev, "ensure_venv", lambda _requirements: Path("python"))
    monkeypatch.setattr(dev, "choose_test_services", lambda: "earshot tests: stubbed")
    monkeypatch.setattr(dev, "run_foreground", lambda _command: 0)

    assert dev.cmd_test([]) == 0
    assert started == []


@pytest.mark.postgres
def test_run_creates_a_missing_postgresql_database_with_one_line(monkeypatch, capsys):
    import sys
    import uuid

    import psycopg

    name = f"earshot_devpy_{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{name}")
    try:
        dev.ensure_database(Path(sys.executable))

        assert capsys.readouterr().out == (
            f"dev.py: created the database {name!r} (postgres://postgres@127.0.0.1:5432/{name})\n"
        )
        psycopg.connect(host="127.0.0.1", user="postgres", dbname=name).close()
        dev.ensure_database(Path(sys.executable))  # there now: nothing to say
        assert capsys.readouterr().out == ""
    finally:
        with psycopg.connect(
            host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


def test_a_database_that_cannot_be_created_is_named_with_the_createdb_command(monkeypatch, capsys):
    import subprocess

    monkeypatch.setenv("DATABASE_URL", "postgres://app:secret@db.example:6543/earshot_x")
    monkeypatch.setattr(
        dev.subprocess,
        "run",
        lambda *a, **kw: subprocess.CompletedProcess(a, 4, "permission denied to create", ""),
    )

    with pytest.raises(SystemExit) as stopped:
        dev.ensure_database(Path("python"))

    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1
    assert "createdb -h db.example -p 6543 -U app earshot_x" in err
    assert "secret" not in err


def test_a_database_url_that_is_not_postgresql_is_left_alone(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "sqlite:///var/db.sqlite3")
    monkeypatch.setattr(dev.subprocess, "run", lambda *a, **kw: pytest.fail("ran"))

    dev.ensure_database(Path("python"))


def test_the_image_serves_with_the_same_gunicorn_limits_as_dev_py():
    """Raised so that Django, not gunicorn's HTML page, answers an overlong query or
    header (docs/runtime.md, "What gunicorn answers")."""
    dockerfile = (Path(dev.REPO) / "Dockerfile").read_text()
    cmd = dockerfile.split("\nCMD ", 1)[1]
    quoted = ", ".join(f'"{word}"' for word in dev.GUNICORN_LIMITS)

    assert quoted in " ".join(cmd.replace("\\\n", " ").split())
    assert "--limit-request-line" in dev.GUNICORN_LIMITS


def test_a_commands_output_is_shown_and_kept_for_the_banner(capsys):
    """`run` shows the seed's lines as they come and repeats them under the URLs."""
    import sys

    kept = dev.manage(Path(sys.executable), "--version", keep_output=True)
    dev.print_banner(8000, "Demo data loaded.\nAPI key:\nesk_secret\n")

    shown = capsys.readouterr().out
    assert kept.strip() and kept in shown
    banner = shown.split("Earshot is running", 1)[1]
    assert "  The demo:\n    Demo data loaded.\n    API key:\n    esk_secret\n" in banner
    assert banner.rstrip().endswith("esk_secret")  # the key last, as the README says


def test_a_failing_command_stops_run_even_when_its_output_is_kept():
    import sys

    with pytest.raises(SystemExit):
        dev.manage(Path(sys.executable), "no_such_command", keep_output=True)
