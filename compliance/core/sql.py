"""Small SQL helpers shared by the bulk paths (purge, sampling, history) and the hot
paths' statements (`bound_cursor`).

WHY: Django writes `pk__in=[...]` as `IN (%s, %s, ...)`, one parameter per id, and
psycopg then quotes each one in Python; for the thousands of ids of a purge batch
that costs more than the statement itself (bench/purge.py), and PostgreSQL parses a
list as long. `field__any_of=ids` sends them instead as one array literal,
`field = ANY('{...}'::bigint[])`: PostgreSQL then probes the index in the array's
order and knows how many ids there are (an `IN (SELECT unnest(...))` is hashed, which
loses the order, and estimated at a fraction of its size).
"""

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING, Any

from django.core.exceptions import EmptyResultSet
from django.db import DEFAULT_DB_ALIAS, connections, models
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Lookup

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.sql.compiler import SQLCompiler


@contextmanager
def bound_cursor() -> Iterator[CursorWrapper]:
    """A cursor on the default connection for statements a hot path runs on every call
    with the same text (the ingest's, the ledger append's).

    On PostgreSQL it binds parameters on the server (Django's own cursors bind on the
    client), so psycopg prepares each statement once per connection
    (`prepare_threshold` in the database OPTIONS) and PostgreSQL neither parses nor plans
    it again: for the short statements of a single POST /api/v1/recordings, parsing and
    planning were most of PostgreSQL's CPU (bench/ingest.py). The psycopg cursor is
    kept with its connection (its adapters looked up once) and is not closed on exit;
    it is wrapped as Django wraps its cursors, so its statements are logged and counted
    like any other. Elsewhere, an ordinary cursor.
    """
    db = connections[DEFAULT_DB_ALIAS]
    if db.vendor != "postgresql":
        with db.cursor() as ordinary:
            yield ordinary
        return
    import psycopg

    db.ensure_connection()
    db.validate_thread_sharing()
    raw = db.connection
    cursor: psycopg.Cursor[Any] | None = getattr(db, "_bound_cursor", None)
    if cursor is None or cursor.connection is not raw or cursor.closed:
        cursor = psycopg.Cursor(raw)
        db._bound_cursor = cursor  # type: ignore[attr-defined]
    yield _BoundDebugCursor(cursor, db) if db.queries_logged else CursorWrapper(cursor, db)


class _BoundDebugCursor(CursorDebugWrapper):
    """Logs a server-bound statement with its values, as Django logs its own: Django
    reads those back from the driver, which has nothing to give once the statement is
    prepared. Only when queries are logged (DEBUG, tests' query counts)."""

    def debug_sql(
        self,
        sql: str | None = None,
        params: Any = None,
        use_last_executed_query: bool = False,
        many: bool = False,
    ) -> Any:
        if use_last_executed_query and sql is not None and not many:
            import psycopg

            with suppress(psycopg.DataError):  # else logged as written, without its values
                sql = psycopg.ClientCursor(self.cursor.connection).mogrify(sql, params)
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


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
