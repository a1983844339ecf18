"""The transaction an action owns.

An action (`compliance/actions/`) writes the rows of several apps and its ledger entry
in one transaction. The pieces it calls from the apps write only their own rows and
leave the ledger entry to the action, so alone they would commit a change without its
evidence: they refuse to run outside a transaction, as `ledger_append` does.
"""

from django.db import connection


def require_transaction(what: str) -> None:
    if not connection.in_atomic_block:
        raise RuntimeError(f"{what} must run inside the transaction of its action")
