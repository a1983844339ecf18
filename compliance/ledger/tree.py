"""The ledger's Merkle tree (RFC 9162) over the entries' leaves in `seq` order (leaf
index = seq - 1), kept as a table of complete subtrees.

Node (level, index) is the root of leaves [index * 2**level, (index + 1) * 2**level);
level 0 holds the leaf hashes. Every subtree hash the RFC's recursion asks for is an
aligned range whose greedy split into powers of two gives stored nodes, so a root at
any size, an inclusion proof and a consistency proof each read O(log n) rows, in one
query. Only the checkpointer writes nodes (appending stays one INSERT): it extends the
tree in batches of leaves, each batch one transaction, the nodes that batch completes
computed from it and the few stored nodes to its left.
"""

from collections.abc import Iterable

from django.db import connection, transaction
from django.db.models import Max, Q

from earshot_verify.merkle import EMPTY_ROOT, hash_children

from .models import LedgerEntry, LedgerTreeNode

Range = tuple[int, int]
Node = tuple[int, int]


class TreeError(Exception):
    """The entries cannot extend the tree (a gap in `seq`): the ledger was tampered with."""


def _largest_power_below(n: int) -> int:
    """The largest power of two strictly less than n (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def _nodes_of(start: int, end: int) -> list[Node]:
    """The stored nodes whose fold is the subtree hash of leaves [start, end): greedy
    powers of two from the left, each aligned because `start` always is."""
    nodes = []
    while start < end:
        size = 1 << ((end - start).bit_length() - 1)
        while start % size:
            size >>= 1
        nodes.append((size.bit_length() - 1, start // size))
        start += size
    return nodes


def _fold(nodes: list[Node], hashes: dict[Node, bytes]) -> bytes:
    result = hashes[nodes[-1]]
    for node in reversed(nodes[:-1]):
        result = hash_children(hashes[node], result)
    return result


def _inclusion_ranges(index: int, start: int, end: int) -> list[Range]:
    """RFC 9162 2.1.3.1 PATH, as the leaf ranges whose hashes it lists, in order."""
    if end - start <= 1:
        return []
    k = _largest_power_below(end - start)
    if index < start + k:
        return [*_inclusion_ranges(index, start, start + k), (start + k, end)]
    return [*_inclusion_ranges(index, start + k, end), (start, start + k)]


def _consistency_ranges(m: int, start: int, end: int, complete: bool) -> list[Range]:
    """RFC 9162 2.1.4.1 SUBPROOF, as leaf ranges, in order."""
    n = end - start
    if m == n:
        return [] if complete else [(start, end)]
    k = _largest_power_below(n)
    if m <= k:
        return [*_consistency_ranges(m, start, start + k, complete), (start + k, end)]
    return [*_consistency_ranges(m - k, start + k, end, False), (start, start + k)]


def _hashes_of(ranges: list[Range]) -> list[bytes]:
    wanted = {range_: _nodes_of(*range_) for range_ in ranges}
    nodes = {node for nodes in wanted.values() for node in nodes}
    hashes = _read_nodes(nodes)
    missing = nodes - hashes.keys()
    if missing:
        raise TreeError(f"tree nodes missing: {sorted(missing)[:5]}")
    return [_fold(wanted[range_], hashes) for range_ in ranges]


def _read_nodes(nodes: Iterable[Node]) -> dict[Node, bytes]:
    wanted = list(nodes)
    if not wanted:
        return {}
    if connection.vendor == "postgresql":
        # One index probe per pair: an ORM filter ORing ~2 log n (level, index) pairs
        # costs more to build and to plan than the rows cost to read.
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT n.level, n.index, n.hash FROM ledger_ledgertreenode n"
                " JOIN unnest(%s::smallint[], %s::bigint[]) AS w(level, index)"
                " ON n.level = w.level AND n.index = w.index",
                [[level for level, _ in wanted], [index for _, index in wanted]],
            )
            return {(level, index): bytes(hash_) for level, index, hash_ in cursor.fetchall()}
    condition = Q(pk__in=[])
    for level, index in wanted:
        condition |= Q(level=level, index=index)
    rows = LedgerTreeNode.objects.filter(condition).values_list("level", "index", "hash")
    return {(level, index): bytes(hash_) for level, index, hash_ in rows}


# --- reads -----------------------------------------------------------------------------


def tree_size() -> int:
    """How many leaves the stored tree holds."""
    top = LedgerTreeNode.objects.filter(level=0).aggregate(top=Max("index"))["top"]
    return 0 if top is None else top + 1


def tree_root(*, size: int) -> bytes:
    """The root of the first `size` leaves (size <= tree_size())."""
    if size == 0:
        return EMPTY_ROOT
    return _hashes_of([(0, size)])[0]


def tree_inclusion_proof(*, index: int, size: int) -> list[bytes]:
    """RFC 9162 inclusion proof of leaf `index` in the tree of `size` leaves."""
    if not 0 <= index < size:
        raise ValueError("index outside the tree")
    return _hashes_of(_inclusion_ranges(index, 0, size))


def tree_consistency_proof(*, first: int, second: int) -> list[bytes]:
    """RFC 9162 consistency proof from the tree of `first` leaves to that of `second`."""
    if not 0 <= first <= second:
        raise ValueError("sizes out of order")
    if first in (0, second):
        return []
    return _hashes_of(_consistency_ranges(first, 0, second, True))


# --- the checkpointer's writes -----------------------------------------------------------


def tree_extend(*, through_size: int, batch: int = 20000) -> int:
    """Add the leaves of entries up to seq `through_size` (committed ones only: a
    committed entry's predecessors are committed, since appends are serialised) and the
    nodes they complete; returns the tree's new size. The caller holds the
    checkpointer's lock, so nobody else extends the tree meanwhile."""
    size = tree_size()
    while size < through_size:
        with transaction.atomic():
            size = _extend_batch(size, min(through_size, size + batch))
    return size


def _extend_batch(size: int, upto: int) -> int:
    rows = list(
        LedgerEntry.objects.filter(seq__gt=size, seq__lte=upto)
        .order_by("seq")
        .values_list("seq", "leaf_hash")
    )
    if not rows:
        return size
    for offset, (seq, _) in enumerate(rows):
        if seq != size + 1 + offset:
            raise TreeError(f"ledger entry #{size + 1 + offset} is missing")
    new: dict[Node, bytes] = {(0, size + i): bytes(h) for i, (_, h) in enumerate(rows)}
    end = size + len(rows)
    level, first = 0, size  # the new nodes at `level` start at index `first`
    while (parent_end := end >> (level + 1)) > first // 2:
        known = new
        if first % 2:  # the first new parent's left child was stored by an earlier batch
            known = {**_read_nodes([(level, first - 1)]), **new}
        for index in range(first // 2, parent_end):
            new[(level + 1, index)] = hash_children(
                known[(level, 2 * index)], new[(level, 2 * index + 1)]
            )
        level, first = level + 1, first // 2
    if connection.vendor == "postgresql":
        # COPY: the ORM's bulk INSERT spends more time building SQL than storing rows.
        with (
            connection.cursor() as cursor,
            cursor.cursor.copy(
                "COPY ledger_ledgertreenode (level, index, hash) FROM STDIN"
            ) as copy,
        ):
            for (lvl, idx), h in new.items():
                copy.write_row((lvl, idx, h))
    else:
        LedgerTreeNode.objects.bulk_create(
            [LedgerTreeNode(level=lvl, index=idx, hash=h) for (lvl, idx), h in new.items()],
            batch_size=5000,
        )
    return end
