"""Small SQL helpers shared by the bulk paths (purge, sampling, history).

WHY: Django writes `pk__in=[...]` as `IN (%s, %s, ...)`, one parameter per id, and
psycopg then quotes each one in Python; for the thousands of ids of a purge batch
that costs more than the statement itself (bench/purge.py), and PostgreSQL parses a
list as long. On PostgreSQL the ids go instead as one array literal.
"""

from collections.abc import Iterable, Sequence

from django.db import connection
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL


def pg_array(values: Iterable[int | str]) -> str:
    """A PostgreSQL array literal of integers or url-safe tokens (nothing to escape in
    either). psycopg would build the same literal quoting each element in Python: a
    few milliseconds for the thousands of ids of a batch."""
    return "{" + ",".join(map(str, values)) + "}"


def ids_in(ids: Sequence[int]) -> RawSQL | list[int]:
    """The right-hand side of an `__in` lookup on an integer column for `ids`: on
    PostgreSQL a subquery unnesting one array parameter, elsewhere the list itself."""
    if connection.vendor == "postgresql":
        return RawSQL("SELECT unnest(%s::bigint[])", [pg_array(ids)])
    return list(ids)


def filter_ids(queryset: QuerySet, ids: Sequence[int], field: str = "pk") -> QuerySet:
    """`queryset` restricted to `field` in `ids` (see `ids_in`)."""
    return queryset.filter(**{f"{field}__in": ids_in(ids)})
