"""Health, readiness, metrics, and JSON answers for API paths that match nothing."""

from celery import current_app
from django.core.exceptions import RequestDataTooBig
from django.db import connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from .errors import error_body
from .readiness import NotReady, registered


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def healthz(request: HttpRequest) -> JsonResponse:
    """The process is up. Says nothing of its dependencies (see /readyz)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    """Ready to serve: the database answers, the broker accepts a connection, and every
    registered check (the ledger against its export, say) passes. Each failing
    registered check is named with a machine-readable code and why. The Celery app is
    the current one (`config/celery.py` makes it): core imports nothing of the project
    above it."""
    checks: dict[str, str] = {}
    reasons: list[dict[str, str]] = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as error:
        checks["database"] = f"error: {type(error).__name__}"
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        checks["broker"] = "ok"
    except Exception as error:
        checks["broker"] = f"error: {type(error).__name__}"
    if checks["database"] == "ok":
        for name, check in registered().items():
            try:
                problem = check()
            except Exception as error:
                problem = NotReady(f"{name}_check_failed", f"error: {type(error).__name__}")
            checks[name] = "ok" if problem is None else problem.code
            if problem is not None:
                reasons.append({"check": name, "code": problem.code, "message": problem.message})
    ready = all(v == "ok" for v in checks.values())
    body: dict[str, object] = {"status": "ok" if ready else "unavailable", "checks": checks}
    if reasons:
        body["reasons"] = reasons
    return JsonResponse(body, status=200 if ready else 503)


def api_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(error_body("not_found", "No such endpoint."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception or Exception())


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse(
            error_body("server_error", "Internal error; it has been logged."), status=500
        )
    from django.views.defaults import server_error as default_server_error

    return default_server_error(request)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return JsonResponse(
                error_body("payload_too_large", "The request body exceeds the size limit."),
                status=413,
            )
        return JsonResponse(
            error_body("bad_request", "The request could not be understood."), status=400
        )
    from django.views.defaults import bad_request as default_bad_request

    return default_bad_request(request, exception or Exception())
