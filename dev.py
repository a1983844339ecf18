#!/usr/bin/env python3
"""Earshot's two developer commands, with nothing but Python 3.11 installed.

    python3 dev.py run [--no-seed]      migrate, seed the demo, serve web + worker + beat
    python3 dev.py test [pytest args]   run the test suite against whatever is available

Both create `.venv` on first use and install the pinned requirements into it; later
runs skip pip while the requirement files are unchanged. This file uses the standard
library only, because it runs before any dependency is installed.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import hashlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parent
VENV = REPO / ".venv"
VAR = REPO / "var"
STAMP = VENV / ".earshot-requirements.json"
SECRET_KEY_FILE = VAR / "secret_key"

LOCAL_POSTGRES_URL = "postgres://postgres@127.0.0.1:5432/earshot"
LOCAL_REDIS_URL = "redis://127.0.0.1:6379/15"

# gunicorn's own limits (4094-byte request line, 8190-byte header field) answer with an
# HTML page; these let Django answer instead, up to gunicorn's highest request line.
# The Dockerfile passes the same.
GUNICORN_LIMITS = ("--limit-request-line", "8190", "--limit-request-field_size", "32768")

PYTEST_NO_TESTS_COLLECTED = 5
STOP_TIMEOUT_SECONDS = 10.0
WEB_START_TIMEOUT_SECONDS = 30.0

USAGE = """\
usage: python3 dev.py run [--no-seed]       start Earshot on http://127.0.0.1:$PORT (8000)
       python3 dev.py test [pytest args...]  run the tests (PostgreSQL/Redis when they answer)
"""


def say(message: str) -> None:
    """Print a line of our own, flushed so it keeps its place among the children's output."""
    print(message, flush=True)


def fail(message: str, code: int = 1) -> SystemExit:
    """An error for the user, without a traceback; `raise fail(...)`."""
    print(f"dev.py: error: {message}", file=sys.stderr, flush=True)
    return SystemExit(code)


# --------------------------------------------------------------------------- venv + pip


def venv_python() -> Path:
    """The interpreter everything after the bootstrap runs with."""
    return VENV / "bin" / "python"


def requirement_closure(path: Path) -> Iterator[Path]:
    """The file and every file it pulls in with -r/-c, so a change anywhere is noticed."""
    yield path
    pattern = re.compile(r"^\s*(?:-r|-c|--requirement|--constraint)(?:\s*=\s*|\s+|(?=\S))(\S+)")
    for line in path.read_text(encoding="utf-8").splitlines():
        match = pattern.match(line)
        if match:
            yield from requirement_closure((path.parent / match.group(1)).resolve())


def requirements_digest(path: Path) -> str:
    """sha256 over the requirement files and the venv's interpreter version.

    pyvenv.cfg is included so that a venv rebuilt on another Python reinstalls.
    """
    digest = hashlib.sha256()
    pyvenv_cfg = VENV / "pyvenv.cfg"
    if pyvenv_cfg.exists():
        digest.update(pyvenv_cfg.read_bytes())
    for file in requirement_closure(path):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()


def read_stamp() -> dict[str, str]:
    """What earlier runs installed: {requirement file name: digest}."""
    try:
        data = json.loads(STAMP.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def write_stamp(stamp: dict[str, str]) -> None:
    """Replace the stamp atomically, so an interrupted write never claims an install."""
    tmp = STAMP.with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(STAMP)


def create_venv() -> None:
    """Create .venv with pip (or repair one whose python is gone).

    A venv this call half-made is removed, so that the next run starts clean instead
    of finding a python without pip; a directory that was already there is left alone.
    """
    existed = VENV.exists()
    say(f"Creating the virtual environment {VENV.relative_to(REPO)}/ ...")
    result = subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=False)
    if result.returncode != 0 or not venv_python().exists():
        if not existed:
            shutil.rmtree(VENV, ignore_errors=True)
        raise fail(
            "could not create .venv. On Debian/Ubuntu install the venv module first: "
            "sudo apt-get install python3-venv"
        )


def ensure_venv(requirements: str) -> Path:
    """Make .venv exist and hold `requirements`; return its python.

    pip runs only when the stamp does not record the current digest of the files,
    which keeps the second `run` or `test` fast and usable offline.
    """
    if not venv_python().exists():
        create_venv()
    target = REPO / requirements
    digest = requirements_digest(target)
    stamp = read_stamp()
    if stamp.get(requirements) != digest:
        say(f"Installing {requirements} into .venv/ (first run, or the requirements changed) ...")
        command = [
            str(venv_python()),
            "-m",
            "pip",
            "install",
            "--disable-pip-version-check",
            "--no-input",
            "--quiet",
            "-r",
            str(target),
        ]
        if subprocess.run(command, cwd=REPO, check=False).returncode != 0:
            raise fail(f"pip could not install {requirements}; see pip's output above")
        # Everything the file pulled in with -r is installed as well.
        for file in requirement_closure(target):
            if file.parent == REPO:
                stamp[file.name] = requirements_digest(file)
        write_stamp(stamp)
    activate_venv_env()
    return venv_python()


def activate_venv_env() -> None:
    """What `source .venv/bin/activate` does, for the child processes we start."""
    os.environ["VIRTUAL_ENV"] = str(VENV)
    bin_dir = str(venv_python().parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("PYTHONHOME", None)


# ------------------------------------------------------------------- service detection


def mask_url(url: str) -> str:
    """The URL with any password replaced by ***, safe to print in logs."""
    scheme, sep, rest = url.partition("://")
    if sep:
        end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
        userinfo, at, hostport = rest[:end].rpartition("@")
        if at and ":" in userinfo:
            user = userinfo.split(":", 1)[0]
            url = f"{scheme}://{user}:***@{hostport}{rest[end:]}"
    return re.sub(r"(?i)\b(password|passwd|pwd)=[^&;#]*", r"\1=***", url)


def backend_name(url: str) -> str:
    """A human name for the server behind a DATABASE_URL or CELERY_BROKER_URL."""
    scheme = url.partition("://")[0].lower()
    names = {
        "postgres": "PostgreSQL",
        "postgresql": "PostgreSQL",
        "pgsql": "PostgreSQL",
        "psql": "PostgreSQL",
        "sqlite": "SQLite",
        "mysql": "MySQL",
        "redis": "Redis",
        "rediss": "Redis",
        "amqp": "RabbitMQ",
        "amqps": "RabbitMQ",
        "sqla+sqlite": "SQLite",
    }
    return names.get(scheme, scheme or "unknown")


def postgres_answers(host: str = "127.0.0.1", port: int = 5432) -> bool:
    """True when a PostgreSQL server answers there.

    Beyond a bare TCP connect we send the protocol's SSLRequest, which every
    PostgreSQL answers with one byte, S or N, before any authentication.
    """
    ssl_request = (8).to_bytes(4, "big") + (80877103).to_bytes(4, "big")
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(ssl_request)
            return sock.recv(1) in (b"S", b"N")
    except OSError:
        return False


def redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    """True when a Redis server there answers PING without needing a password."""
    try:
        with socket.create_connection((host, port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


def choose_test_services() -> str:
    """Set DATABASE_URL/CELERY_BROKER_URL for the tests and describe the choice.

    The user's own settings win; else the local servers of the dev and CI machines
    when they answer; else the embedded defaults of config.settings (SQLite files),
    so that the tests also run on a machine with nothing installed.
    """
    if os.environ.get("DATABASE_URL"):
        url = os.environ["DATABASE_URL"]
        database = f"{backend_name(url)} ({mask_url(url)})"
    elif postgres_answers():
        os.environ["DATABASE_URL"] = LOCAL_POSTGRES_URL
        database = f"PostgreSQL ({LOCAL_POSTGRES_URL})"
    else:
        database = "SQLite (embedded default)"

    if os.environ.get("CELERY_BROKER_URL"):
        url = os.environ["CELERY_BROKER_URL"]
        broker = f"{backend_name(url)} ({mask_url(url)})"
    elif redis_answers():
        os.environ["CELERY_BROKER_URL"] = LOCAL_REDIS_URL
        broker = f"Redis ({LOCAL_REDIS_URL})"
    else:
        broker = "SQLite (embedded default)"
    return f"earshot tests: database={database}, broker={broker}"


# ------------------------------------------------------------------------------ test


def run_foreground(command: Sequence[str]) -> int:
    """Run one child to completion, passing SIGTERM on to it; return its exit code.

    Ctrl-C reaches the child directly (same process group), so here we only keep
    waiting for it to finish its own shutdown and report.
    """
    child = subprocess.Popen(command, cwd=REPO)

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    previous = signal.signal(signal.SIGTERM, forward)
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                continue
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 128 - code if code < 0 else code


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALL = "apt-get install -y chromium"


def chromium_notice(*, chromium: Path = CHROMIUM, ci: bool = False) -> str | None:
    """What to tell the user when the browser tests cannot run, or None when they can.

    Installing system packages is the machine's business (.ci/run does it in CI), not
    this command's: it only names what is missing and how to get it. Under CI=true the
    browser tests fail instead of skipping, and the message says so.
    """
    if chromium.exists():
        return None
    consequence = "the browser tests will FAIL (CI=true)" if ci else "the browser tests will skip"
    return (
        f"earshot tests: {chromium} is missing; {consequence}. "
        f"Install Debian's chromium with: {CHROMIUM_INSTALL}"
    )


def pytest_exit_code(code: int) -> tuple[int, str | None]:
    """dev.py's exit code for pytest's, and a line to print with it.

    pytest's 5 (no test collected) is passed through as a failure: a run that tested
    nothing, through a typo in a path or a -k that matches nothing, must not look green.
    """
    if code == PYTEST_NO_TESTS_COLLECTED:
        return code, (
            "earshot tests: pytest collected no tests (exit code 5); this is a failure. "
            "Check the paths and -k/-m expressions given to `dev.py test`."
        )
    return code, None


def cmd_test(pytest_args: Sequence[str]) -> int:
    """`dev.py test`: pytest on the best available database and broker."""
    say(choose_test_services())
    python = ensure_venv("requirements-dev.txt")
    VAR.mkdir(exist_ok=True)
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.test"
    output_dir = Path(os.environ.get("TEST_OUTPUT_DIR") or REPO / "test-output")
    output_dir.mkdir(parents=True, exist_ok=True)
    os.environ["TEST_OUTPUT_DIR"] = str(output_dir)

    notice = chromium_notice(ci=os.environ.get("CI") == "true")
    if notice:
        say(notice)
    code, message = pytest_exit_code(run_foreground([str(python), "-m", "pytest", *pytest_args]))
    if message:
        print(message, file=sys.stderr, flush=True)
    return code


# ------------------------------------------------------------------------------- run


def secret_key() -> str:
    """The development SECRET_KEY: made once into var/secret_key (mode 600), then reused.

    A stable key keeps sessions and signed links valid across restarts; the file
    stays out of git (var/ is ignored).
    """
    if SECRET_KEY_FILE.exists():
        key = SECRET_KEY_FILE.read_text(encoding="utf-8").strip()
        if key:
            SECRET_KEY_FILE.chmod(0o600)
            return key
        SECRET_KEY_FILE.unlink()
    key = secrets.token_urlsafe(50)
    fd = os.open(SECRET_KEY_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


def web_port() -> int:
    """PORT from the environment (default 8000), checked before anything slow runs."""
    raw = os.environ.get("PORT", "8000")
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise fail(f"PORT must be a TCP port number, not {raw!r}")
    return int(raw)


def port_in_use(port: int) -> bool:
    """True when something already listens on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def set_run_environment() -> None:
    """Defaults for `run`; anything the user exported is left alone."""
    VAR.mkdir(exist_ok=True)
    if not os.environ.get("SECRET_KEY"):
        os.environ["SECRET_KEY"] = secret_key()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")
    os.environ.setdefault("DEBUG", "0")
    os.environ.setdefault("PYTHONUNBUFFERED", "1")


def manage(python: Path, *args: str, keep_output: bool = False) -> str:
    """One management command; stop `run` if it fails. With `keep_output`, what it
    writes to stdout is also returned (it is shown as it comes all the same)."""
    say(f"$ manage.py {' '.join(args)}")
    command = [str(python), "manage.py", *args]
    if not keep_output:
        if subprocess.run(command, cwd=REPO, check=False).returncode != 0:
            raise fail(f"manage.py {args[0]} failed; see its output above")
        return ""
    with subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        lines = []
        try:
            for line in child.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                lines.append(line)
        except BaseException:  # Ctrl-C: stop the command too, as subprocess.run does
            child.kill()
            child.wait()
            raise
    if child.returncode != 0:
        raise fail(f"manage.py {args[0]} failed; see its output above")
    return "".join(lines)


# Run by the venv's python (psycopg is there, not in the standard library): exits 0
# when the database answers, 3 when it was missing and is now created, 4 when it is
# missing and could not be created, 5 on any other connection problem (migrate then
# reports it). The URL comes in the environment, never on a command line.
ENSURE_DATABASE = r"""
import os, sys
from urllib.parse import unquote, urlsplit
import psycopg
from psycopg import errors, sql

url = urlsplit(os.environ["EARSHOT_DATABASE_URL"])
params = {
    "host": url.hostname or None, "port": url.port or None,
    "user": unquote(url.username) if url.username else None,
    "password": unquote(url.password) if url.password else None,
    "connect_timeout": 5,
}
params = {k: v for k, v in params.items() if v is not None}
name = unquote(url.path.lstrip("/"))
try:
    psycopg.connect(dbname=name, **params).close()
    sys.exit(0)
except psycopg.Error as exc:
    # psycopg gives a failed connect no SQLSTATE: the server's sentence tells
    missing = isinstance(exc, errors.InvalidCatalogName) or (
        f'database "{name}" does not exist' in str(exc)
    )
    if not missing:
        print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
        sys.exit(5)
try:
    with psycopg.connect(dbname="postgres", autocommit=True, **params) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
except psycopg.Error as exc:
    print(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    sys.exit(4)
sys.exit(3)
"""


def createdb_command(url: str) -> str:
    """The `createdb` command that creates the database a PostgreSQL URL names."""
    from urllib.parse import unquote, urlsplit

    parts = urlsplit(url)
    words = ["createdb"]
    if parts.hostname:
        words += ["-h", parts.hostname]
    if parts.port:
        words += ["-p", str(parts.port)]
    if parts.username:
        words += ["-U", unquote(parts.username)]
    words.append(unquote(parts.path.lstrip("/")))
    return " ".join(words)


def ensure_database(python: Path) -> None:
    """Create the PostgreSQL database DATABASE_URL names when the server answers but
    the database does not exist, so that `run` does not end in migrate's traceback;
    if it cannot be created, stop with the `createdb` command to run."""
    url = os.environ.get("DATABASE_URL", "")
    if backend_name(url) != "PostgreSQL":
        return
    name = url.partition("://")[2].partition("/")[2].partition("?")[0]
    result = subprocess.run(
        [str(python), "-c", ENSURE_DATABASE],
        cwd=REPO,
        env={**os.environ, "EARSHOT_DATABASE_URL": url},
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode == 3:
        say(f"dev.py: created the database {name!r} ({mask_url(url)})")
    elif result.returncode == 4:
        reason = result.stdout.strip() or "permission denied?"
        raise fail(
            f"the database {name!r} does not exist and could not be created ({reason}); "
            f"create it with: {createdb_command(url)}"
        )


def die_with_parent() -> None:
    """In the child, before exec: get SIGTERM when dev.py dies, even by SIGKILL (Linux).

    Without this a killed dev.py would leave gunicorn holding the port.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def start_child(name: str, command: Sequence[str]) -> subprocess.Popen[bytes]:
    """Start a supervised child in a process group of its own.

    Its own group means Ctrl-C in the terminal reaches only dev.py, which then stops
    the children in order; otherwise a child dying of SIGINT looks like a crash.
    """
    say(f"starting {name}: {' '.join(command)}")
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        process_group=0,
        preexec_fn=die_with_parent if sys.platform == "linux" else None,
    )


class Supervisor:
    """The three long-running children, and the signals that stop them."""

    def __init__(self) -> None:
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.signals_received = 0

    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        """First Ctrl-C/SIGTERM: stop gracefully. A second one: kill at once."""
        self.signals_received += 1
        if self.signals_received == 1:
            # os.write, not print: print is not safe to re-enter from a signal handler.
            name = signal.Signals(signum).name
            os.write(
                sys.stdout.fileno(), f"\nreceived {name}; stopping (again to kill) ...\n".encode()
            )
        else:
            self.kill_all()

    def install_signal_handlers(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, self.on_signal)

    def exited(self) -> tuple[str, int] | None:
        """The first child found to have exited, with its exit code."""
        for name, child in self.children.items():
            code = child.poll()
            if code is not None:
                return name, code
        return None

    def kill_all(self) -> None:
        for child in self.children.values():
            if child.poll() is None:
                child.kill()

    def stop_all(self) -> None:
        """SIGTERM every child by pid, wait up to 10 s in total, then SIGKILL the rest."""
        for name, child in self.children.items():
            if child.poll() is None:
                say(f"stopping {name} (pid {child.pid})")
                child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
        for name, child in self.children.items():
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} (pid {child.pid}) did not stop within 10 s; killing it")
                child.kill()
                child.wait()

    def wait_for_web(self, port: int) -> bool:
        """Wait until gunicorn accepts connections; False if stopped or a child died."""
        deadline = time.monotonic() + WEB_START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.signals_received or self.exited():
                return False
            if port_in_use(port):
                return True
            time.sleep(0.2)
        say(f"warning: nothing answers on 127.0.0.1:{port} after {WEB_START_TIMEOUT_SECONDS} s")
        return False

    def watch(self) -> int:
        """Block until a signal (exit 0) or until a child exits (exit non-zero)."""
        while not self.signals_received:
            gone = self.exited()
            if gone:
                name, code = gone
                say(f"{name} exited with code {code}; stopping the others")
                self.stop_all()
                return code if code > 0 else 1
            time.sleep(0.5)
        self.stop_all()
        say("stopped.")
        return 0


def print_banner(port: int, demo: str = "") -> None:
    """The URLs, and the demo's logins and key again (`demo`, what seed_demo printed):
    by now the seed's log and the worker's lie between them and the terminal's end."""
    base = f"http://127.0.0.1:{port}"
    logins = "".join(f"    {line}\n" for line in demo.strip().splitlines())
    say(
        "\n"
        "  Earshot is running (Ctrl-C stops it):\n"
        f"    app       {base}/\n"
        f"    API docs  {base}/api/docs/\n"
        f"    admin     {base}/admin/\n"
        f"    health    {base}/healthz\n" + (f"\n  The demo:\n{logins}" if logins else "")
    )


def cmd_run(argv: Sequence[str]) -> int:
    """`dev.py run`: prepare the database, then serve web, worker and beat until stopped."""
    parser = argparse.ArgumentParser(prog="python3 dev.py run", description=cmd_run.__doc__)
    parser.add_argument("--no-seed", action="store_true", help="skip `manage.py seed_demo`")
    options = parser.parse_args(argv)

    port = web_port()
    if port_in_use(port):
        raise fail(f"127.0.0.1:{port} is already in use; stop that or set PORT=<another port>")
    python = ensure_venv("requirements.txt")
    set_run_environment()
    ensure_database(python)
    manage(python, "migrate", "--noinput")
    manage(python, "collectstatic", "--noinput")
    demo = "" if options.no_seed else manage(python, "seed_demo", keep_output=True)

    supervisor = Supervisor()
    supervisor.install_signal_handlers()
    py = str(python)
    celery = [py, "-m", "celery", "-A", "config"]
    commands = {
        # gunicorn writes no access log unless asked to; a graceful timeout of 8 s lets
        # it finish inside the 10 s that stop_all() allows; without a control socket
        # (default ~/.gunicorn/gunicorn.ctl) two checkouts can run side by side. The
        # request-line and header limits are raised so that Django answers an overlong
        # query or header with the JSON envelope (docs/runtime.md, "What gunicorn answers").
        "web": [
            *(py, "-m", "gunicorn", "config.wsgi:application"),
            *("--bind", f"127.0.0.1:{port}", "--workers", "2", "--graceful-timeout", "8"),
            "--no-control-socket",
            *GUNICORN_LIMITS,
        ],
        "worker": [*celery, "worker", "-l", "info", "--concurrency", "2"],
        "beat": [*celery, "beat", "-l", "info", "-s", str(VAR / "celerybeat-schedule")],
    }
    for name, command in commands.items():
        if supervisor.signals_received:
            break
        supervisor.children[name] = start_child(name, command)
    if supervisor.wait_for_web(port):
        print_banner(port, demo)
    return supervisor.watch()


# ------------------------------------------------------------------------------ main


def main(argv: Sequence[str]) -> int:
    # ruff assumes 3.11 (pyproject); an older python3 still gets a clear message.
    if sys.version_info < (3, 11):  # noqa: UP036
        raise fail("Python 3.11 or newer is needed (python3 --version)")
    os.chdir(REPO)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(USAGE)
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command == "run":
        return cmd_run(rest)
    if command == "test":
        return cmd_test(rest)
    sys.stderr.write(f"dev.py: unknown command {command!r}\n{USAGE}")
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
