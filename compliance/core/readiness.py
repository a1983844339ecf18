"""Checks that `/readyz` runs beside the database and the broker, registered by the apps
that own them (an app above `core` registers in its AppConfig.ready, so `core` imports
nothing above it)."""

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class NotReady:
    """Why the service must not take traffic: a stable code and a message for people."""

    code: str
    message: str


ReadinessCheck = Callable[[], NotReady | None]

_checks: dict[str, ReadinessCheck] = {}


def register(name: str, check: ReadinessCheck) -> None:
    _checks[name] = check


def registered() -> dict[str, ReadinessCheck]:
    return dict(_checks)
