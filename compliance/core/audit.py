"""Field-level history (django-auditlog) for bulk updates.

auditlog follows `save()` and `delete()` through signals; bulk and queryset updates
send none (its #203, #515, #537), so the code that makes them calls
`audit_bulk_change` in the same transaction. The hash-chained ledger remains the
evidence; this is the detail behind it. Which models are audited at all is the
security app's choice (`compliance/security/audit.py`); this helper stands in core so
that every app that updates rows in bulk (the purge, a hold's release) can call it
without importing an app above it.

Nothing personal goes into the history: no transcripts, no storage keys, no key
hashes, no second-factor secrets.
"""

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from auditlog.cid import get_cid
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import EmptyResultSet
from django.db import connection, models
from django.db.models import QuerySet
from django.utils.encoding import smart_str

from .sql import pg_array

BULK_BATCH = 1000


def _as_text(value: Any) -> str:
    """A value as auditlog writes it in `changes` (its default, text form)."""
    return "None" if value is None else smart_str(value)


def audit_bulk_change(
    *,
    model: type[models.Model],
    pks: Iterable[Any] | QuerySet,
    changes: Mapping[str, tuple[Any, Any] | list[Any]],
    actor: str,
) -> int:
    """Write one auditlog UPDATE entry per object that a bulk update changed.

    `pks` is the changed objects' primary keys, or a queryset of `model` that selects
    them once the update is done. `changes` is {field: (old, new)}, the same for every
    object (what a queryset `update()` does); run it in the transaction of the update,
    so the history and the change commit together. `actor` is the service or person,
    as the ledger names it. Returns the number of entries written.
    """
    if isinstance(pks, QuerySet):
        if pks.model is not model:
            raise TypeError(f"pks selects {pks.model.__name__} rows, not {model.__name__}")
        pks = pks.values_list("pk", flat=True)
    else:
        pks = list(pks)
    if isinstance(pks, list) and not pks:
        return 0
    shared = _shared(model=model, changes=changes, actor=actor)
    name = model._meta.verbose_name
    if _on_server(model, pks):
        return _insert_per_object(LogEntry(**shared), prefix=f"{name} ", pks=pks)
    entries = [
        LogEntry(
            **shared,
            object_pk=str(pk),
            object_id=pk if isinstance(pk, int) else None,
            object_repr=f"{name} {pk}",
        )
        for pk in pks
    ]
    LogEntry.objects.bulk_create(entries, batch_size=BULK_BATCH)
    return len(entries)


def audit_bulk_change_sql(
    *,
    model: type[models.Model],
    source: str,
    source_params: Sequence[Any],
    changes: Mapping[str, tuple[Any, Any] | list[Any]],
    actor: str,
) -> tuple[str, list[Any]]:
    """PostgreSQL: the `INSERT ... SELECT` of `audit_bulk_change` for the integer pks
    that `source` (a FROM item naming them `t(id)`, e.g. `written AS t(id)` of a
    `WITH written AS (UPDATE ... RETURNING id)`) yields, and its parameters: for a
    caller that writes the change and its history in one statement."""
    entry = LogEntry(**_shared(model=model, changes=changes, actor=actor))
    return _insert_sql(
        entry, prefix=f"{model._meta.verbose_name} ", source=source, source_params=source_params
    )


def _shared(
    *, model: type[models.Model], changes: Mapping[str, tuple[Any, Any] | list[Any]], actor: str
) -> dict[str, Any]:
    return {
        "content_type": ContentType.objects.get_for_model(model),
        "action": LogEntry.Action.UPDATE,
        "changes": {name: [_as_text(old), _as_text(new)] for name, (old, new) in changes.items()},
        "changes_text": "",
        "cid": get_cid(),
        "additional_data": {"actor": actor, "bulk": True},
    }


def _on_server(model: type[models.Model], pks: list[Any] | QuerySet) -> bool:
    """Whether PostgreSQL writes the entries itself: for integer pks it can, in one
    statement. A LogEntry built and sent per object was 39% of a purge's time
    (bench/purge.py)."""
    return (
        connection.vendor == "postgresql"
        and isinstance(model._meta.pk, models.IntegerField)
        and (isinstance(pks, QuerySet) or all(type(pk) is int for pk in pks))
    )


def _insert_per_object(
    entry: LogEntry,
    *,
    prefix: str,
    pks: list[int] | QuerySet,
) -> int:
    """PostgreSQL: `INSERT ... SELECT` a copy of `entry` per integer pk, with the
    object's pk, id and repr (`prefix` and the pk) filled in per row as the ORM path
    fills them.

    Every other column gets `entry`'s value as the ORM would write it (each field's
    own preparation; defaults such as the timestamp included), so the rows are the
    ones `bulk_create` writes. A queryset's pks never leave the server.
    """
    if isinstance(pks, QuerySet):
        try:
            sql, source_params = pks.query.sql_with_params()
        except EmptyResultSet:  # e.g. pk__in=[]: Django knows it selects nothing
            return 0
        source = f"({sql}) AS t(id)"
    else:
        source = "unnest(%s::bigint[]) AS t(id)"
        source_params = (pg_array(pks),)
    insert, params = _insert_sql(entry, prefix=prefix, source=source, source_params=source_params)
    with connection.cursor() as cursor:
        cursor.execute(insert, params)
        return cursor.rowcount


def _insert_sql(
    entry: LogEntry, *, prefix: str, source: str, source_params: Sequence[Any]
) -> tuple[str, list[Any]]:
    per_object = {"object_pk": "t.id::text", "object_id": "t.id", "object_repr": "%s || t.id::text"}
    meta = LogEntry._meta
    quote = connection.ops.quote_name
    columns: list[str] = []
    values: list[str] = []
    params: list[Any] = []
    for field in meta.concrete_fields:
        if field.primary_key or field.generated:
            continue
        columns.append(quote(field.column))
        if field.name in per_object:
            values.append(per_object[field.name])
            if field.name == "object_repr":
                params.append(prefix)
        else:
            values.append("%s")
            params.append(field.get_db_prep_save(field.pre_save(entry, add=True), connection))
    insert = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 (identifiers from _meta, values as parameters)
        f"SELECT {', '.join(values)} FROM {source} ORDER BY t.id"
    )
    return insert, [*params, *source_params]
