"""The receivers of the purge's step signal that the crash tests install."""

import logging
import os
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from compliance.retention.purge import purge_step

logger = logging.getLogger(__name__)


class Killed(BaseException):
    """Raised at a purge step by `purge_killed_at`: not an Exception, so that no
    `except Exception` in the purge can catch it, as none could catch a SIGKILL."""


@contextmanager
def purge_killed_at(at: str) -> Iterator[None]:
    """Within the block, a purge in this process raises `Killed` at step `at`."""

    def die(sender: Any, *, step: str, **kwargs: Any) -> None:
        if step == at:
            raise Killed(step)

    purge_step.connect(die, weak=False, dispatch_uid="tests.faults.purge_killed_at")
    try:
        yield
    finally:
        purge_step.disconnect(dispatch_uid="tests.faults.purge_killed_at")


def kill_process_at(at: str) -> None:
    """From now on, this process kills itself (SIGKILL) when a purge reaches step `at`."""

    def die(sender: Any, *, step: str, **kwargs: Any) -> None:
        if step == at:
            logger.warning("purge.fault_injected step=%s pid=%s", step, os.getpid())
            os.kill(os.getpid(), signal.SIGKILL)

    purge_step.connect(die, weak=False, dispatch_uid="tests.faults.kill_process_at")
