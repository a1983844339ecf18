"""The app as bench/eligibility.py serves it: the project's settings and URLs plus the
floor, a constant answer to measure the eligibility endpoints against. Only the
benchmark loads this (DJANGO_SETTINGS_MODULE=bench.server.settings); the service
itself has no benchmark endpoint."""
