"""While the database's log is behind the exported one (docs/runtime.md, "Restoring from
an older backup"), writing requests are answered 503 before any view runs: the change
could not record its evidence (`ledger_append` refuses it too), and a client told
`ledger_behind_export` knows to retry later rather than that its request was wrong.

Eligibility decisions are refused as well, reads though they are: until the recovery
re-applies them, the withdrawals made since the backup are missing from the consent
states, and a decision read from them could hand a withdrawn recording to a reviewer.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from compliance.core.errors import error_body

from .restore import ledger_writes_paused

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
DECISION_PATHS = ("/api/v1/eligibility/",)
RETRY_AFTER_SECONDS = "30"


class LedgerWriteGuardMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method not in SAFE_METHODS or request.path.startswith(DECISION_PATHS):
            state = ledger_writes_paused()
            if state is not None:
                response: HttpResponse
                if request.path.startswith("/api/"):
                    response = JsonResponse(error_body(state.code, state.message), status=503)
                else:
                    response = HttpResponse(
                        state.message, status=503, content_type="text/plain; charset=utf-8"
                    )
                response["Retry-After"] = RETRY_AFTER_SECONDS
                return response
        return self.get_response(request)
