"""Settings read from the environment.

Production gets its secrets and hosts from the environment and fails loudly without
them; `python3 dev.py run` supplies the embedded defaults (a SQLite file, a broker on
a SQLite file, a generated secret key) for a zero-setup start.
"""

from pathlib import Path
from typing import Any

import environ

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()

SECRET_KEY = env.str("SECRET_KEY")
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A page in the site's frame that says nothing changed and how to go on.
CSRF_FAILURE_VIEW = "compliance.web.views.errors.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "auditlog",
    "compliance.core",
    "compliance.ledger",
    "compliance.clients",
    "compliance.accounts",
    "compliance.consent",
    "compliance.recordings",
    "compliance.transfers",
    "compliance.eligibility",
    "compliance.retention",
    "compliance.sampling",
    "compliance.security",
    "compliance.webhooks",
    "compliance.web",
    "compliance.demo",
    "compliance.recovery",
]

MIDDLEWARE = [
    # Refuses, before any view runs, an oversized body (by its Content-Length) and a
    # NUL character in the path, the query or a JSON body (PostgreSQL refuses them).
    "compliance.security.middleware.RequestGuardMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "compliance.security.middleware.SecurityHeadersMiddleware",
    # 503 `ledger_behind_export` for writing methods while the database's ledger is
    # behind its export (restored from an older backup; docs/runtime.md).
    "compliance.ledger.middleware.LedgerWriteGuardMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # The pages' language (the account's setting, the switcher's cookie, the browser);
    # the API and the probes keep English and pay nothing for it.
    "compliance.web.middleware.PageLanguageMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # auditlog's middleware, skipped for GET/HEAD/OPTIONS (see its docstring).
    "compliance.security.middleware.AuditContextMiddleware",
]

# models.W040 and W039: SQLite has no covering indexes. The covering indexes and unique
# keys (recordings' `recording_external_id_cover`, `artefact_one_audio`, ...) cover on
# PostgreSQL, the real database; on the SQLite default they are plain ones, which is
# all that a small local database needs. W039 says such a unique key "won't be
# created": ours are `CoveringUniqueConstraint`s, which are (compliance/core/constraints.py).
SILENCED_SYSTEM_CHECKS = ["models.W039", "models.W040"]

# Messages live in the session (never in a cookie), and no request pays for setting
# up cookie signing to read messages it will never have (the API's).
MESSAGE_STORAGE = "django.contrib.messages.storage.session.SessionStorage"

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.i18n",
            ],
        },
    },
]

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'earshot.sqlite3'}"),
}
# Persistent connections: a new connection per request costs several times the
# query itself (docs/reliability.md); health checks drop a connection the server has closed.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=300)
# Off: a health check is a round trip before every request's first query, which
# halved the eligibility endpoint's throughput (bench/eligibility.py). A connection
# the server dropped fails one request and is then replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    DATABASES["default"].setdefault("OPTIONS", {})
    # Only server-binding cursors prepare, and only the eligibility facts query uses
    # one; set DB_PREPARE_THRESHOLD to nothing behind a pooler in transaction mode.
    _prepare_threshold = env.str("DB_PREPARE_THRESHOLD", default="1")
    DATABASES["default"]["OPTIONS"]["prepare_threshold"] = (
        int(_prepare_threshold) if _prepare_threshold else None
    )
    # An OLTP service: JIT compilation costs more than it saves on our short queries,
    # and the data lives on SSDs (random reads cost little more than sequential ones).
    # The prepared facts query gets a generic plan: with the default plan_cache_mode
    # PostgreSQL re-plans it on every call (the generic plan of `= ANY($n)` is costed
    # above the custom one), and planning took 0.55 ms of a 0.65 ms eligibility query
    # (bench/eligibility.py). Only prepared statements are affected, and only that
    # query is prepared.
    DATABASES["default"]["OPTIONS"].setdefault(
        "options",
        env.str(
            "DB_SESSION_OPTIONS",
            default="-c jit=off -c random_page_cost=1.1 -c plan_cache_mode=force_generic_plan",
        ),
    )
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and a busy timeout let web, worker and beat share the file.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en"
# The pages speak these (locale/<code>/LC_MESSAGES, .po and the compiled .mo both
# committed); the API's messages stay English.
LANGUAGES = [("en", "English"), ("de", "Deutsch")]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Dates on the pages as each language writes them (config/formats/<code>/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=VAR_DIR / "static")
MEDIA_ROOT = env.path("MEDIA_ROOT", default=VAR_DIR / "media")

STORAGES = {
    "default": {
        "BACKEND": env.str("STORAGE_BACKEND", default="django.core.files.storage.FileSystemStorage")
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
# S3-compatible storage through django-storages: STORAGE_BACKEND=storages.backends.s3.S3Storage
AWS_STORAGE_BUCKET_NAME = env.str("AWS_STORAGE_BUCKET_NAME", default="")
AWS_S3_ENDPOINT_URL = env.str("AWS_S3_ENDPOINT_URL", default=None)
AWS_S3_REGION_NAME = env.str("AWS_S3_REGION_NAME", default=None)
AWS_DEFAULT_ACL = None
AWS_QUERYSTRING_AUTH = True

# Uploads: an audio clip of a voice request is seconds long; refuse anything absurd.
MAX_AUDIO_BYTES = env.int("MAX_AUDIO_BYTES", default=20 * 1024 * 1024)
# Where the platform puts audio that it then registers (POST /api/v1/recordings/batch):
# only keys under it are accepted, so a registration cannot claim (and a purge then
# delete) an object that Earshot stored itself or that lies elsewhere in the bucket.
INGEST_AUDIO_PREFIX = env.str("INGEST_AUDIO_PREFIX", default="ingest/")
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=5 * 1024 * 1024)
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "compliance.clients.authentication.ApiKeyAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Form parsers refuse NUL characters (compliance/security/parsers.py); a JSON body
    # with one never gets this far (RequestGuardMiddleware).
    "DEFAULT_PARSER_CLASSES": [
        "rest_framework.parsers.JSONParser",
        "compliance.security.parsers.MultiPartParser",
        "compliance.security.parsers.FormParser",
    ],
    "EXCEPTION_HANDLER": "compliance.core.errors.api_exception_handler",
    # DRF's negotiation, answered at once for a JSON view asked for JSON or anything
    "DEFAULT_CONTENT_NEGOTIATION_CLASS": "compliance.edge.negotiation.JsonFirstNegotiation",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Per API key and per signed-in user (compliance/security/throttling.py). Not a
    # security boundary (docs/reliability.md): a brake on a runaway client, set far above
    # what the benchmarks ask for.
    "DEFAULT_THROTTLE_CLASSES": [
        "compliance.security.throttling.ClientKeyThrottle",
        "compliance.security.throttling.UserThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "client": env.str("API_THROTTLE_CLIENT", default="20000/min"),
        "user": env.str("API_THROTTLE_USER", default="600/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Earshot API",
    "DESCRIPTION": (
        "Consent and data-retention compliance for voice recordings. "
        "Authenticate with `Authorization: Api-Key <key>`. "
        'Errors: `{"error": {"code", "message", "fields"}}`.'
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        # the 409/422 answers of the operations that take an Idempotency-Key
        "compliance.core.idempotency.document_idempotency",
        # every operation documents the error envelope for its 4xx answers
        "compliance.security.schema.document_error_responses",
        # a summary and a description for people on every operation
        "config.api_docs.describe_operations",
    ],
}

# Celery: Redis in production; a broker on a SQLite file (kombu's SQLAlchemy
# transport) when nothing else is configured, so `run` needs no server.
CELERY_BROKER_URL = env.str(
    "CELERY_BROKER_URL", default=f"sqla+sqlite:///{VAR_DIR / 'celery-broker.sqlite3'}"
)
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = 300
CELERY_TASK_SOFT_TIME_LIMIT = 240
CELERY_TASK_IGNORE_RESULT = True
# A web request enqueues after its commit, as a hint (compliance/core/enqueue.py): with
# the broker down it must give up within seconds, never hang on an unanswered connect.
BROKER_CONNECT_TIMEOUT = env.float("BROKER_CONNECT_TIMEOUT", default=2.0)
# ... and after a refusal, a process does not try again for this long (the sweeps run
# what it did not send).
BROKER_BACKOFF_SECONDS = env.float("BROKER_BACKOFF_SECONDS", default=5.0)
# Redis redelivers a task unacknowledged this long (docs/reliability.md); the SQLAlchemy
# transport hands its options to create_engine(), which refuses these.
CELERY_BROKER_TRANSPORT_OPTIONS = (
    {"visibility_timeout": 3600, "socket_connect_timeout": BROKER_CONNECT_TIMEOUT}
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else {}
)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_CONNECT_TIMEOUT
# Three tries 0.2 s apart, then the publisher gives up and the sweeps take over.
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 2,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.2,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE: dict = {
    # with the purge lease below, a dead worker's batch is taken over within 50 s
    "purge-expired": {"task": "retention.purge_expired", "schedule": 30.0},
    "retention-sweep": {"task": "retention.sweep", "schedule": 60.0},
    "storage-sweep": {"task": "retention.storage_sweep", "schedule": 6 * 3600.0},
    "sampling-expire-items": {"task": "sampling.expire_items", "schedule": 300.0},
    # starts the full ledger verification when due, resumes one whose worker died
    "ledger-verification-sweep": {"task": "ledger.verification_sweep", "schedule": 300.0},
    "idempotency-keys-cleanup": {"task": "core.idempotency_keys_cleanup", "schedule": 3600.0},
    # signs a checkpoint when the ledger grew since the last one
    "ledger-checkpoint": {"task": "ledger.checkpoint", "schedule": 60.0},
    # turns new ledger entries into deliveries and sends what is due; one not started
    # within 2 s is dropped, so a busy worker does not pile them up
    "webhooks-send": {"task": "webhooks.send", "schedule": 1.0, "options": {"expires": 2.0}},
}
# Webhooks (compliance/webhooks/): subscribers' URLs must be https and resolve to public
# addresses unless these say otherwise (local receivers in development and tests).
WEBHOOKS_ALLOW_HTTP = env.bool("WEBHOOKS_ALLOW_HTTP", default=False)
WEBHOOKS_ALLOW_PRIVATE_NETWORKS = env.bool("WEBHOOKS_ALLOW_PRIVATE_NETWORKS", default=False)
# Encrypts the subscribers' signing secrets at rest; derived from SECRET_KEY when empty.
WEBHOOKS_ENCRYPTION_KEY = env.str("WEBHOOKS_ENCRYPTION_KEY", default="")
WEBHOOKS_TIMEOUT_SECONDS = env.float("WEBHOOKS_TIMEOUT_SECONDS", default=15.0)
# deliveries in flight per subscription: a slow receiver holds no more of the senders
WEBHOOKS_MAX_IN_FLIGHT = env.int("WEBHOOKS_MAX_IN_FLIGHT", default=4)
WEBHOOKS_SENDER_THREADS = env.int("WEBHOOKS_SENDER_THREADS", default=16)
# deliveries a sender's lane takes at once, sent one after another on one connection (a lane
# stops early at its lease or the sender's budget, so a slow receiver's lane ends early)
WEBHOOKS_LANE_SIZE = env.int("WEBHOOKS_LANE_SIZE", default=200)
# a failing delivery is retried for this long, then its subscription is marked failing
WEBHOOKS_RETRY_SECONDS = env.int("WEBHOOKS_RETRY_SECONDS", default=25 * 3600)
WEBHOOKS_RETRY_MAX_DELAY_SECONDS = env.float("WEBHOOKS_RETRY_MAX_DELAY_SECONDS", default=3600.0)
# a deletion a partner system that holds copies has not confirmed this long after it was
# told is an alert (the officers' webhooks page, earshot_webhook_unconfirmed_deletions)
WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS = env.int(
    "WEBHOOKS_CONFIRMATION_ALERT_AFTER_SECONDS", default=24 * 3600
)
# after a rotation the old secret signs beside the new one for this long
WEBHOOKS_SECRET_OVERLAP_SECONDS = env.int("WEBHOOKS_SECRET_OVERLAP_SECONDS", default=24 * 3600)
# Idempotency-Key (compliance/core/idempotency.py): a key and its stored answer are kept
# this long; a request holds its key in flight at most this long (gunicorn's worker
# timeout (30 s by default) is shorter, so only a crashed attempt ever reaches it).
IDEMPOTENCY_KEY_SECONDS = env.int("IDEMPOTENCY_KEY_SECONDS", default=24 * 3600)
IDEMPOTENCY_IN_FLIGHT_SECONDS = env.int("IDEMPOTENCY_IN_FLIGHT_SECONDS", default=120)
# A full verification of the ledger's chain (re-hashing every entry) at least this often.
LEDGER_VERIFY_EVERY_SECONDS = env.int("LEDGER_VERIFY_EVERY_SECONDS", default=3600)
# The checkpoint signing key, in the signed-note signer format (PRIVATE+KEY+name+hash+key),
# or the path of a file holding it. Unset: the first process that needs one creates it
# under LEDGER_KEY_DIR and every process of the deployment then reads that file.
LEDGER_SIGNING_KEY = env.str("LEDGER_SIGNING_KEY", default="")
LEDGER_KEY_DIR = env.path("LEDGER_KEY_DIR", default=VAR_DIR / "ledger")
# The checkpoints' origin line, and the name a generated key gets.
LEDGER_ORIGIN = env.str("LEDGER_ORIGIN", default="earshot.local/ledger")
# Who consent receipts name as the controller.
LEDGER_CONTROLLER = env.str("LEDGER_CONTROLLER", default="Earshot operator")
# Every checkpoint and every entry's leaf are also written here (files never rewritten):
# a directory, or an S3-compatible prefix `s3://bucket/prefix/` (through boto3, with
# AWS_S3_ENDPOINT_URL, AWS_S3_REGION_NAME and the usual AWS_* credentials).
_ledger_export = env.str("LEDGER_EXPORT", default=str(VAR_DIR / "ledger" / "export"))
LEDGER_EXPORT: "str | Path" = (
    _ledger_export if _ledger_export.startswith("s3://") else Path(_ledger_export)
)
# S3 Object Lock on every exported object: COMPLIANCE (nobody, the root user included,
# can delete or overwrite it before its date), GOVERNANCE, or empty for none; and for
# how many days. The bucket must have Object Lock enabled (docs/runtime.md).
LEDGER_EXPORT_OBJECT_LOCK_MODE = env.str("LEDGER_EXPORT_OBJECT_LOCK_MODE", default="")
LEDGER_EXPORT_OBJECT_LOCK_DAYS = env.int("LEDGER_EXPORT_OBJECT_LOCK_DAYS", default=3650)
# After this long a purge claim that no live worker holds locked counts as abandoned,
# and the next purge run takes it over. A live worker keeps its batch's rows locked
# while it finishes, however long that takes, so the lease only has to cover the
# moment between claim and finish; it bounds how late a dead worker's batch goes.
PURGE_LEASE_SECONDS = env.int("EARSHOT_PURGE_LEASE_SECONDS", default=20)
# The storage sweep (compliance/retention/storage_sweep.py) refuses a mass change: it
# deletes no orphan file when more than this share of the files it listed are orphans,
# and tombstones no artefact when more than this share of those it checked are missing,
# the limit never below the floor. A wrong bucket, an unmounted MEDIA_ROOT or a
# DATABASE_URL naming an empty database would otherwise make everything one or the other.
STORAGE_SWEEP_MAX_CHANGE_SHARE = env.float("STORAGE_SWEEP_MAX_CHANGE_SHARE", default=0.01)
STORAGE_SWEEP_MAX_CHANGE_FLOOR = env.int("STORAGE_SWEEP_MAX_CHANGE_FLOOR", default=100)

# How long a verified API key is trusted in-process before it is looked up again:
# a revoked key stops working within this many seconds.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=5.0)

ELIGIBILITY_BATCH_LIMIT = 10_000

SESSION_COOKIE_HTTPONLY = True
CSRF_COOKIE_HTTPONLY = False
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
# Sessions are where officers' second factor lives: a working day, not weeks.
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=12 * 3600)

LOGIN_URL = "/accounts/login/"
LOGIN_REDIRECT_URL = "/"

# The sign-in throttle, the API throttles and anything else that must be shared by
# every process live here. Local memory is per process, so with several web workers
# each would count failed sign-ins for itself and an attacker would get that many more
# tries: when the broker is Redis, the cache defaults to the same Redis, which every
# process already reaches. Without Redis (the zero-setup start, one process) it stays
# in local memory. The key prefix keeps the cache's keys apart from the broker's.
_BROKER_IS_REDIS = CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
CACHES = {
    "default": env.cache(
        "CACHE_URL", default=CELERY_BROKER_URL if _BROKER_IS_REDIS else "locmemcache://"
    )
}
CACHES["default"].setdefault("KEY_PREFIX", "earshot")

# Sign-in (compliance/security): failures allowed per username and address, and per
# address, within the window; then refused until the window has passed.
SIGN_IN_MAX_FAILURES = env.int("SIGN_IN_MAX_FAILURES", default=5)
SIGN_IN_MAX_FAILURES_PER_ADDRESS = env.int("SIGN_IN_MAX_FAILURES_PER_ADDRESS", default=50)
SIGN_IN_FAILURE_WINDOW_SECONDS = env.int("SIGN_IN_FAILURE_WINDOW_SECONDS", default=15 * 60)
# How many reverse proxies put their X-Forwarded-For entry in front of us; 0 trusts no
# such header and takes REMOTE_ADDR.
TRUSTED_PROXY_HOPS = env.int("TRUSTED_PROXY_HOPS", default=0)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Earshot")
# A second factor's throttle (django-otp): each failure doubles the wait before the next try.
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1

# The largest request body accepted at all (an audio upload and its fields); anything
# bigger is refused from its Content-Length before a byte of it is read.
REQUEST_MAX_BYTES = env.int(
    "REQUEST_MAX_BYTES", default=MAX_AUDIO_BYTES + DATA_UPLOAD_MAX_MEMORY_SIZE
)
# When set, /metrics answers only a scraper sending `Authorization: Bearer <token>`.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# Features the pages never use, switched off for them and anything they embed.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), "
    "microphone=(), payment=(), usb=()"
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    # the 1 s webhooks tick logs at DEBUG when idle (compliance/webhooks/logs.py)
    "filters": {
        "quiet_idle_ticks": {"()": "compliance.webhooks.logs.QuietIdleTicks"},
        # a 4xx refusal (403 on /officer/, a body too large) logs one line, no traceback
        "expected_refusals": {"()": "compliance.core.logs.ExpectedRefusals"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "filters": ["expected_refusals"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        **{
            name: {"filters": ["quiet_idle_ticks"]}
            for name in ("celery.beat", "celery.worker.strategy", "celery.app.trace")
        },
    },
}
