"""The sign-in throttle counts in a cache every process shares: on Redis by default when
the broker is Redis, so that N web workers do not give an attacker N times the tries."""

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache.backends.redis import RedisCache

from compliance.security import throttling
from compliance.security.throttling import SignInThrottle

ROOT = Path(__file__).resolve().parents[2]

redis_only = pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"),
    reason="needs Redis (set CELERY_BROKER_URL=redis://...)",
)


def _cache_setting(**env: str) -> dict:
    """CACHES["default"] as the base settings resolve it in a fresh process."""
    environment = {
        k: v for k, v in os.environ.items() if k not in ("CACHE_URL", "CELERY_BROKER_URL")
    }
    environment.update({"DJANGO_SETTINGS_MODULE": "config.settings.base", "SECRET_KEY": "x", **env})
    code = "import json; from django.conf import settings; print(json.dumps(settings.CACHES))"
    done = subprocess.run(  # noqa: S603 (our own interpreter, fixed code)
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(done.stdout)["default"]


def test_the_cache_defaults_to_the_brokers_redis():
    cache = _cache_setting(CELERY_BROKER_URL="redis://127.0.0.1:6379/5")

    assert cache["BACKEND"] == "django.core.cache.backends.redis.RedisCache"
    assert cache["LOCATION"] == "redis://127.0.0.1:6379/5"
    assert cache["KEY_PREFIX"] == "earshot"


def test_without_redis_the_cache_stays_in_local_memory():
    cache = _cache_setting(CELERY_BROKER_URL="sqla+sqlite:///var/broker.sqlite3")

    assert cache["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"


def test_cache_url_wins_over_the_broker():
    cache = _cache_setting(
        CELERY_BROKER_URL="redis://127.0.0.1:6379/5", CACHE_URL="redis://127.0.0.1:6379/9"
    )

    assert cache["LOCATION"] == "redis://127.0.0.1:6379/9"


@redis_only
def test_two_processes_caches_count_failed_sign_ins_together(monkeypatch, settings):
    """Two cache clients, as two web workers hold them: the failures of both add up,
    and the sixth try is refused whichever worker takes it."""
    settings.SIGN_IN_MAX_FAILURES = 5
    prefix = f"test-{uuid.uuid4().hex}"
    params = {"KEY_PREFIX": prefix}
    worker_a = RedisCache(settings.CELERY_BROKER_URL, params)
    worker_b = RedisCache(settings.CELERY_BROKER_URL, params)
    throttle = SignInThrottle(username="alice", address="203.0.113.9")
    try:
        for attempt in range(5):
            monkeypatch.setattr(throttling, "cache", worker_a if attempt % 2 else worker_b)
            assert not throttle.blocked()
            throttle.failed()

        monkeypatch.setattr(throttling, "cache", worker_a)
        assert throttle.blocked()
        monkeypatch.setattr(throttling, "cache", worker_b)
        assert throttle.blocked()
    finally:
        client = worker_a._cache.get_client(write=True)
        for key in client.scan_iter(f"{prefix}:*"):
            client.delete(key)
