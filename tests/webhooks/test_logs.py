"""The 1 s webhook tick is quiet when idle (DEBUG), and says so at INFO when it worked."""

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from celery.app import trace
from django.conf import settings

from compliance.actions.consent import consent_set
from compliance.webhooks.tasks import webhooks_send_task
from tests.conftest import postgres_only
from tests.factories import ProfileFactory
from tests.retention.test_worker import _database_url, _wait_until

REPO = Path(__file__).resolve().parents[2]


def _tick(name: str, return_value: str | None) -> None:
    context = {"id": "abc", "name": name, "args": "()", "kwargs": "{}"}
    if return_value is None:
        trace.info(trace.LOG_RECEIVED, {**context, "eta": None})
    else:
        trace.info(trace.LOG_SUCCESS, {**context, "return_value": return_value, "runtime": 0.01})


def test_idle_webhook_ticks_log_below_info_and_working_ones_at_info(caplog):
    with caplog.at_level(logging.INFO):
        logging.getLogger("celery.beat").info(
            "Scheduler: Sending due task %s (%s)", "webhooks-send", "webhooks.send"
        )
        logging.getLogger("celery.beat").info(
            "Scheduler: Sending due task %s (%s)", "retention-sweep", "retention.sweep"
        )
        _tick("webhooks.send", None)
        _tick("webhooks.send", "0")
        _tick("webhooks.send", "12")
        _tick("retention.sweep", "0")

    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert len(lines) == 3
    assert "retention-sweep" in lines[0]
    assert "webhooks.send[abc] succeeded" in lines[1] and lines[1].endswith(": 12")
    assert "retention.sweep[abc] succeeded" in lines[2]


@pytest.mark.worker
@postgres_only()
@pytest.mark.skipif(
    not settings.CELERY_BROKER_URL.startswith("redis://"), reason="needs a Redis broker"
)
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_at_info_logs_only_the_tick_that_delivered(receiver, subscribe, tmp_path):
    from config.celery import app

    subscribe(receiver.url)
    app.control.purge()
    log = tmp_path / "worker.log"
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _database_url(),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "WEBHOOKS_ALLOW_HTTP": "true",
        "WEBHOOKS_ALLOW_PRIVATE_NETWORKS": "true",
    }
    with log.open("w") as out:
        worker = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
            [
                *(sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=solo"),
                *("--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"),
            ],
            cwd=REPO,
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            webhooks_send_task.delay()  # idle: nothing to send
            webhooks_send_task.delay()
            time.sleep(0.5)
            consent_set(
                profile=ProfileFactory(),
                purpose="human_review",
                granted=True,
                channel="api",
                notice_version="v1",
                actor="test",
            )
            webhooks_send_task.delay()  # a tick with work
            assert _wait_until(lambda: len(receiver.got) == 1, 60)
            assert _wait_until(lambda: "succeeded" in log.read_text(), 10)
        finally:
            worker.terminate()
            worker.wait(20)

    text = log.read_text()
    ticks = [line for line in text.splitlines() if "webhooks.send[" in line]
    assert len(ticks) == 1, text
    assert "INFO" in ticks[0] and "succeeded" in ticks[0] and not ticks[0].endswith(": 0")
