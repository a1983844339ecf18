"""Test settings: the database and broker come from the environment that `dev.py test` sets."""

import os

os.environ.setdefault("SECRET_KEY", "test-only-not-secret")

from .base import *  # noqa: F403
from .base import MEDIA_ROOT

DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
API_KEY_CACHE_SECONDS = 0.0
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
MEDIA_ROOT = os.environ.get("TEST_MEDIA_ROOT", str(MEDIA_ROOT) + "-test")

# Each test process counts in its own memory (tests clear the cache between tests); the
# shared Redis cache is tested explicitly (tests/security/test_throttle_cache.py).
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

WHITENOISE_AUTOREFRESH = True
WHITENOISE_USE_FINDERS = True
