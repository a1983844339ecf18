"""Expected refusals log one line. Django logs a 403 raised by a view (a non-officer
on /officer/) and every `SuspiciousOperation` (a body over the size limit is
`RequestDataTooBig`) with the exception's full traceback, the latter at ERROR: any
client could fill the log with tracebacks of refusals that are working as designed.
This filter, on the console handler (config/settings/base.py LOGGING; a handler
filter because `django.security.<ExceptionName>` has one logger per exception),
drops the traceback of a `django.request` or `django.security.*` record whose answer
was a 4xx and logs it as a WARNING. A 5xx keeps its traceback."""

import logging


def _expected_refusal(record: logging.LogRecord) -> bool:
    status = getattr(record, "status_code", None)
    if not isinstance(status, int) or not 400 <= status < 500:
        return False
    return record.name == "django.request" or record.name.startswith("django.security.")


class ExpectedRefusals(logging.Filter):
    """A 4xx refusal from Django's request or security loggers: one WARNING line."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _expected_refusal(record):
            record.exc_info = None
            record.exc_text = None
            if record.levelno > logging.WARNING:
                record.levelno = logging.WARNING
                record.levelname = logging.getLevelName(logging.WARNING)
        return True
