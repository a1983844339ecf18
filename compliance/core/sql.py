"""Small SQL helpers shared by the bulk paths (purge, sampling, history).

WHY: Django writes `pk__in=[...]` as `IN (%s, %s, ...)`, one parameter per id, and
psycopg then quotes each one in Python; for the thousands of ids of a purge batch
that costs more than the statement itself (bench/purge.py), and PostgreSQL parses a
list as long. `field__any_of=ids` sends them instead as one array literal,
`field = ANY('{...}'::bigint[])`: PostgreSQL then probes the index in the array's
order and knows how many ids there are (an `IN (SELECT unnest(...))` is hashed, which
loses the order, and estimated at a fraction of its size).
"""

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.core.exceptions import EmptyResultSet
from django.db import models
from django.db.models import Lookup

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


def pg_array(values: Iterable[int | str]) -> str:
    """A PostgreSQL array literal of integers or url-safe tokens (nothing to escape in
    either). psycopg would build the same literal quoting each element in Python: a
    few milliseconds for the thousands of ids of a batch."""
    return "{" + ",".join(map(str, values)) + "}"


class AnyOf(Lookup):
    """`field__any_of=ids` for an integer column or a foreign key: on PostgreSQL
    `field = ANY(%s::bigint[])` with one array parameter; elsewhere an `IN` list."""

    lookup_name = "any_of"
    prepare_rhs = False

    def get_prep_lookup(self) -> list[int]:
        return [int(value) for value in self.rhs]

    # Django takes the params as any sequence (a list here); the stubs want a tuple.
    def as_sql(  # type: ignore[override]
        self, compiler: "SQLCompiler", connection: "BaseDatabaseWrapper"
    ) -> tuple[str, list[Any]]:
        lhs, lhs_params = self.process_lhs(compiler, connection)
        if connection.vendor == "postgresql":
            return f"{lhs} = ANY(%s::bigint[])", [*lhs_params, pg_array(self.rhs)]
        if not self.rhs:
            raise EmptyResultSet
        return f"{lhs} IN ({', '.join(['%s'] * len(self.rhs))})", [*lhs_params, *self.rhs]


def register_lookups() -> None:
    """CoreConfig.ready(): integer fields (primary keys included) and foreign keys."""
    models.IntegerField.register_lookup(AnyOf)
    models.ForeignKey.register_lookup(AnyOf)
