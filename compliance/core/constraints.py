"""A unique key whose index also answers look-ups alone, on every database we run on."""

from typing import Any

from django.db.models import UniqueConstraint


class CoveringUniqueConstraint(UniqueConstraint):
    """A `UniqueConstraint` with `include` columns (PostgreSQL's `INCLUDE`: the index
    then answers a query that reads them without visiting the table) that stays a unique
    key on a database without covering indexes (SQLite), as the same key without the
    included columns. Django would leave such a constraint out there altogether, and the
    key's uniqueness with it.

    WHY: one index then both keeps the key unique and serves the hot path from the index
    alone, where a unique index and a covering index on the same key would write two
    index entries for every row (docs/capacity.md, "One index a category").
    """

    def _on(self, schema_editor: Any) -> UniqueConstraint:
        if schema_editor.connection.features.supports_covering_indexes:
            return self
        _, args, kwargs = self.deconstruct()
        kwargs.pop("include", None)
        return UniqueConstraint(*args, **kwargs)

    def constraint_sql(self, model: Any, schema_editor: Any) -> Any:
        return UniqueConstraint.constraint_sql(self._on(schema_editor), model, schema_editor)

    def create_sql(self, model: Any, schema_editor: Any) -> Any:
        return UniqueConstraint.create_sql(self._on(schema_editor), model, schema_editor)

    def remove_sql(self, model: Any, schema_editor: Any) -> Any:
        return UniqueConstraint.remove_sql(self._on(schema_editor), model, schema_editor)
