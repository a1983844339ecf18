"""Handing work to Celery after a commit, as a hint that can fail without harm.

The database holds the work (a deletion request in `received`, a policy not yet
applied, a verification run not yet claimed), written in the transaction of the change,
and a beat sweep finds whatever no worker took. The enqueue only makes a worker start
sooner. So once the change has committed, a broker that is down, full or slow must not
turn the answer into a 5xx: the client would retry and create the thing twice. A
failed enqueue is logged and counted, and the sweep does the work on its next round.

Services name the task (`enqueue_on_commit("retention.run_deletion_request", ...)`)
rather than import it: a task module imports its services, so an import back would
make a circle.

After a refused publish this process leaves the broker alone for BROKER_BACKOFF_SECONDS
(those enqueues count as failed too): in an outage every request would otherwise pay
for the connect and its retries.
"""

import logging
import time
from functools import partial
from typing import Any

from celery import Task, current_app
from django.conf import settings
from django.db import transaction
from prometheus_client import Counter

from .metrics import registry

logger = logging.getLogger(__name__)

ENQUEUE_FAILURES = Counter(
    "earshot_enqueue_failures",
    "Tasks this process could not hand to the broker; their work waits for its sweep.",
    ["task"],
    registry=registry,
)


_skip_until = 0.0  # time.monotonic() before which this process does not try the broker


def enqueue(task: Task | str, *args: Any) -> bool:
    """Send `task(*args)` now (a task, or its registered name); False, logged and
    counted, when the broker refused it (or refused another shortly before)."""
    global _skip_until
    if isinstance(task, str):
        task = task_by_name(task)
    if time.monotonic() < _skip_until:
        ENQUEUE_FAILURES.labels(task=task.name).inc()
        logger.warning("task.enqueue_skipped task=%s broker refused recently", task.name)
        return False
    try:
        task.delay(*args)
    # Whatever the broker or its client raises (connection refused, timeout, an OOM
    # answer from Redis), the caller's work is already safe in the database, and the
    # only wrong answer would be to fail the caller.
    except Exception:
        _skip_until = time.monotonic() + settings.BROKER_BACKOFF_SECONDS
        ENQUEUE_FAILURES.labels(task=task.name).inc()
        logger.warning("task.enqueue_failed task=%s", task.name, exc_info=True)
        return False
    return True


def task_by_name(name: str) -> Task:
    """The registered task `name`. A web process never imports the task modules itself
    (only the worker autodiscovers them), so the first lookup there runs the discovery."""
    if name not in current_app.tasks:
        current_app.loader.import_default_modules()
    return current_app.tasks[name]


def enqueue_backoff_reset() -> None:
    """Try the broker again at the next enqueue (tests, after moving the broker)."""
    global _skip_until
    _skip_until = 0.0


def enqueue_on_commit(task: Task | str, *args: Any) -> None:
    """`enqueue` once the current transaction commits; nothing if it rolls back."""
    transaction.on_commit(partial(enqueue, task, *args))
