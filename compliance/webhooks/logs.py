"""Quiet idle ticks. Beat sends `webhooks.send` every second, and at INFO Celery logs
three lines for each (beat's "Sending due task", the worker's "received" and
"succeeded"): the console of `python3 dev.py run` scrolled with nothing happening.
This filter, on those three Celery loggers (config/settings/base.py LOGGING), lowers
them to DEBUG for the webhook tick, except a "succeeded" whose task did work (it
returns how many events it dispatched and deliveries it tried: not 0)."""

import logging

QUIET_TASKS = frozenset({"webhooks.send"})
QUIET_BEAT_ENTRIES = frozenset({"webhooks-send"})
_IDLE_RESULTS = frozenset({"0", "None"})


def _idle_tick(record: logging.LogRecord) -> bool:
    if record.name == "celery.beat":
        args = record.args if isinstance(record.args, tuple) else ()
        return str(record.msg).startswith("Scheduler: Sending due task") and bool(
            args and args[0] in QUIET_BEAT_ENTRIES
        )
    data = getattr(record, "data", None)
    if not isinstance(data, dict) or data.get("name") not in QUIET_TASKS:
        return False
    if "return_value" in data:  # "succeeded": idle when it did nothing
        return str(data["return_value"]) in _IDLE_RESULTS
    return "runtime" not in data  # "received": the outcome line tells if work was done


class QuietIdleTicks(logging.Filter):
    """Lowers an idle tick's INFO lines to DEBUG (shown only where DEBUG is on)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno != logging.INFO or not _idle_tick(record):
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
