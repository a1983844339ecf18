"""Fault injection for the crash tests, kept out of the service's code.

The purge sends `purge_step` at each step boundary of a batch
(compliance/retention/purge.py); nothing in the service listens. A Celery worker the
crash tests start with DJANGO_SETTINGS_MODULE=tests.faults.settings and
TEST_PURGE_FAULT=<step> installs this app, which connects a receiver that kills its
own process (SIGKILL) at that step: a crash with no chance to clean up.
In-process tests use `hooks.purge_killed_at` to raise at a step instead.
"""
