import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection
from rest_framework.test import APIClient

from compliance.clients.authentication import forget_cached_keys
from compliance.clients.scopes import SCOPES
from compliance.clients.services import service_client_create
from compliance.eligibility.rules import facts_pool_close

VOICE_DIR = Path(__file__).resolve().parent.parent / "compliance" / "demo" / "voice"


@pytest.fixture(autouse=True)
def _media_root(settings, tmp_path: Path) -> None:
    settings.MEDIA_ROOT = str(tmp_path / "media")


@pytest.fixture(autouse=True)
def _fresh_key_cache() -> None:
    forget_cached_keys()


@pytest.fixture(autouse=True)
def _ledger_files(settings, tmp_path: Path) -> None:
    """Each test signs with its own generated key and publishes to its own directory."""
    from compliance.ledger import signing
    from compliance.ledger.restore import ledger_export_state_forget

    settings.LEDGER_SIGNING_KEY = ""
    settings.LEDGER_KEY_DIR = tmp_path / "ledger"
    settings.LEDGER_EXPORT = tmp_path / "ledger" / "export"
    signing._load.cache_clear()
    ledger_export_state_forget()


@pytest.fixture(autouse=True)
def _broker_tried_afresh() -> None:
    """Each test starts with the broker not in backoff: a refusal one test provoked
    (a broker moved or stopped) must not make another test's enqueue skip it
    (compliance/core/enqueue.py keeps the backoff per process)."""
    from compliance.core.enqueue import enqueue_backoff_reset

    enqueue_backoff_reset()


@pytest.fixture(autouse=True)
def _facts_pool_closed():
    """A large batch's pool threads keep their own database connections: close them
    after each test, so that none outlives the test database."""
    yield
    facts_pool_close()


@pytest.fixture
def output_dir() -> Path:
    path = Path(os.environ.get("TEST_OUTPUT_DIR", "test-output"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def api_client_with_scopes(db) -> Callable[..., APIClient]:
    """An APIClient authenticated as a new service client holding `scopes`."""
    counter = iter(range(1_000_000))

    def make(*scopes: str) -> APIClient:
        _, key = service_client_create(name=f"test-client-{next(counter)}", scopes=list(scopes))
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture
def platform(api_client_with_scopes) -> APIClient:
    """A service client with every scope."""
    return api_client_with_scopes(*SCOPES)


@pytest.fixture
def voice_clip() -> Path:
    return VOICE_DIR / "turn-on-lights.wav"


def advisory_waiter(key: int, mode: str, seconds: float) -> bool:
    """Whether, within `seconds`, another backend comes to wait for PostgreSQL's
    advisory lock `key` in `mode` (pg_locks' name: 'ExclusiveLock', 'ShareLock')."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
                " AND objid = %s AND mode = %s AND NOT granted",
                [key & 0xFFFFFFFF, mode],
            )
            if cursor.fetchone()[0]:
                return True
        time.sleep(0.05)
    return False


def postgres_only() -> pytest.MarkDecorator:
    return pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="needs PostgreSQL (set DATABASE_URL or run it locally)",
    )


@pytest.fixture(autouse=True)
def _ledger_flushable(request: pytest.FixtureRequest):
    """Let a transactional test's teardown flush the append-only ledger.

    The ledger's trigger refuses TRUNCATE, which is how Django empties the database
    after a `transaction=True` test. Just before that flush (this fixture is set up
    after the database one, so it is torn down before it) the session stops firing
    triggers; Django closes the connection right after the flush, so no other test
    ever runs without them.
    """
    if not _transactional(request):
        yield
        return
    request.getfixturevalue("_django_db_helper")
    yield
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET session_replication_role = replica")


@pytest.fixture(autouse=True)
def _consent_locks_as_migrated(request: pytest.FixtureRequest) -> None:
    """The consent locks' rows, as consent migration 0003 leaves them, in a
    transactional test: the flush after the one before emptied the table. (The code
    creates a missing row when it may wait, but a draw's top-up round, which may not,
    leaves a profile without one out, which a deployed table never makes it do.)"""
    if not _transactional(request):
        return
    request.getfixturevalue("_django_db_helper")
    from compliance.consent.models import CONSENT_LOCKS, ConsentLock

    ConsentLock.objects.bulk_create(
        [ConsentLock(pk=row) for row in range(CONSENT_LOCKS)],
        ignore_conflicts=True,
        batch_size=4_096,
    )


def _transactional(request: pytest.FixtureRequest) -> bool:
    marker = request.node.get_closest_marker("django_db")
    return bool(marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames
    )


@contextmanager
def broker_unreachable() -> Iterator[str]:
    """The Celery app's broker moved to a closed local port: every publish is refused at
    once (no server, so no long connect). Yields the broker URL."""
    from compliance.core.enqueue import enqueue_backoff_reset
    from config.celery import app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # closed again: nothing listens on `port` now
    url = f"redis://127.0.0.1:{port}/0"

    def use(write_url: str | None) -> None:
        # Publishing connects to broker_write_url; Celery reads broker_url from the
        # environment first, so the write URL is the one a test can move.
        app.conf.broker_write_url = write_url
        app._pool = None  # the connection and producer pools were made for the old URL
        app.amqp._producer_pool = None
        enqueue_backoff_reset()

    use(url)
    try:
        yield url
    finally:
        use(None)


@pytest.fixture
def broker_down() -> Iterator[str]:
    with broker_unreachable() as url:
        yield url


@pytest.fixture(scope="module")
def s3_server():
    """A local S3 server (moto_server, from requirements-dev) on a free port of 127.0.0.1,
    for the module that asks for it: tests/core/test_storage.py, tests/ledger/test_export_s3.py."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Path(sys.executable).with_name("moto_server")
    process = subprocess.Popen(  # noqa: S603
        [str(server), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("moto_server did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
