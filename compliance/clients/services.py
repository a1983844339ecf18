import secrets

from django.db import transaction
from django.utils import timezone

from compliance.core.errors import ApplicationError, Conflict, FieldError, field_error
from compliance.ledger.services import ledger_append

from .keys import api_key_hash
from .models import NAME_MAX_LENGTH, ServiceClient
from .scopes import SCOPES

KEY_PREFIX = "esk_"


@transaction.atomic
def service_client_create(
    *, name: str, scopes: list[str], actor: str = ""
) -> tuple[ServiceClient, str]:
    """Create a client and return it with its key, which is not stored and cannot be shown again."""
    unknown = sorted(set(scopes) - SCOPES.keys())
    if unknown:
        raise ApplicationError(
            "unknown_scope",
            f"Unknown scopes: {', '.join(unknown)}.",
            fields={"scopes": [FieldError("unknown", f"Unknown scope {s!r}.") for s in unknown]},
        )
    if not name.strip():
        raise ApplicationError(
            "validation_error",
            "A client needs a name.",
            fields=field_error("name", "required", "This field is required."),
        )
    if len(name) > NAME_MAX_LENGTH:
        raise ApplicationError(
            "validation_error",
            f"A client name has at most {NAME_MAX_LENGTH} characters.",
            fields=field_error("name", "max_length", f"At most {NAME_MAX_LENGTH} characters."),
        )
    if ServiceClient.objects.filter(name=name).exists():
        raise Conflict("duplicate", f"A client named {name!r} exists.")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    client = ServiceClient.objects.create(
        name=name, key_prefix=key[:12], key_hash=api_key_hash(key), scopes=sorted(set(scopes))
    )
    ledger_append(
        kind="service_client.created",
        subject=f"client:{client.name}",
        actor=actor,
        payload={"scopes": client.scopes},
    )
    return client, key


@transaction.atomic
def service_client_revoke(*, client: ServiceClient, actor: str = "") -> None:
    if client.revoked_at is not None:
        return
    client.revoked_at = timezone.now()
    client.save(update_fields=["revoked_at"])
    ledger_append(kind="service_client.revoked", subject=f"client:{client.name}", actor=actor)
