"""Checking a purpose named in a request: a read of the closed list in code, which
every app that takes a purpose asks (consent changes, sample draws)."""

from compliance.core.errors import ApplicationError, field_error

from .models import Purpose


def validate_purpose(purpose: str, field: str = "purpose") -> str:
    if purpose not in Purpose.values:
        raise ApplicationError(
            "unknown_purpose",
            f"Unknown purpose; one of: {', '.join(Purpose.values)}.",
            fields=field_error(field, "unknown", f"Must be one of {', '.join(Purpose.values)}."),
        )
    return purpose
