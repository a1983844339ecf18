# syntax=docker/dockerfile:1
# Earshot: one image for web (gunicorn, the default command), Celery worker and beat.
#   docker build -t earshot .
#   docker compose up        (see docker-compose.yml)
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_INPUT=1

# An unprivileged user; the code stays root-owned and read-only to it.
RUN groupadd --system --gid 10001 earshot \
    && useradd --system --uid 10001 --gid earshot --home-dir /app --no-create-home \
        --shell /usr/sbin/nologin earshot

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them. All of them
# ship wheels (psycopg[binary] included), so no compiler or libpq is needed.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

ENV DJANGO_SETTINGS_MODULE=config.settings.production \
    STATIC_ROOT=/app/static \
    MEDIA_ROOT=/app/media \
    WEB_CONCURRENCY=2

# Static files are baked into the image (served by WhiteNoise). The key exists only
# for this RUN step: settings refuse to load without one, and collectstatic signs
# nothing. The real SECRET_KEY comes from the environment at run time.
RUN SECRET_KEY=build-time-only-not-a-secret python manage.py collectstatic --noinput \
    && mkdir -p /app/media /app/var \
    && chown earshot:earshot /app/media /app/var

USER earshot

EXPOSE 8000

# gunicorn reads its worker count from WEB_CONCURRENCY and extra flags from
# GUNICORN_CMD_ARGS (e.g. "--access-logfile -"). The control socket is off: it
# would need a writable home directory.
# The request-line and header limits are dev.py's GUNICORN_LIMITS (docs/runtime.md).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--no-control-socket", \
     "--limit-request-line", "8190", "--limit-request-field_size", "32768"]
