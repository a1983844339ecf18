import hashlib
import random

import pytest
from django.db import transaction
from hypothesis import given, settings
from hypothesis import strategies as st

from compliance.ledger import tree
from compliance.ledger.models import LedgerEntry, LedgerTreeNode
from earshot_verify.merkle import (
    EMPTY_ROOT,
    ProofError,
    hash_children,
    hash_leaf,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
)
from tests.conftest import postgres_only
from tests.ledger.conftest import TABLE, append, sql, tampering

# --- a plain recursive reference: RFC 9162 2.1.1, 2.1.3.1, 2.1.4.1 as written ------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_root(hashes: list[bytes]) -> bytes:
    if not hashes:
        return EMPTY_ROOT
    if len(hashes) == 1:
        return hashes[0]
    k = _k(len(hashes))
    return hash_children(ref_root(hashes[:k]), ref_root(hashes[k:]))


def ref_path(m: int, hashes: list[bytes]) -> list[bytes]:
    if len(hashes) <= 1:
        return []
    k = _k(len(hashes))
    if m < k:
        return [*ref_path(m, hashes[:k]), ref_root(hashes[k:])]
    return [*ref_path(m - k, hashes[k:]), ref_root(hashes[:k])]


def ref_subproof(m: int, hashes: list[bytes], b: bool) -> list[bytes]:
    n = len(hashes)
    if m == n:
        return [] if b else [ref_root(hashes)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, hashes[:k], b), ref_root(hashes[k:])]
    return [*ref_subproof(m - k, hashes[k:], False), ref_root(hashes[:k])]


def ref_consistency(m: int, hashes: list[bytes]) -> list[bytes]:
    return [] if m in (0, len(hashes)) else ref_subproof(m, hashes, True)


# --- the published vectors (RFC 6962 / certificate-transparency testdata) -----------------

LEAVES = [
    bytes.fromhex(h)
    for h in [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ]
]
ROOTS = [
    bytes.fromhex(h)
    for h in [
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ]
]
H = {
    "96a2": "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "5f08": "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
    "6b47": "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
    "bc1a": "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "ca85": "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
    "d37e": "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "fac5": "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "6e34": "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "0ebc": "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
}
INCLUSION = [  # (leaf index, tree size, proof)
    (0, 8, ["96a2", "5f08", "6b47"]),
    (5, 8, ["bc1a", "ca85", "d37e"]),
    (2, 3, ["fac5"]),
    (1, 5, ["6e34", "5f08", "bc1a"]),
]
CONSISTENCY = [
    (1, 1, []),
    (1, 8, ["96a2", "5f08", "6b47"]),
    (6, 8, ["0ebc", "ca85", "d37e"]),
    (2, 5, ["5f08", "bc1a"]),
]


class MemoryNodes:
    """Every complete subtree of `hashes`, as the table holds them, read by `tree`."""

    def __init__(self, hashes: list[bytes]) -> None:
        self.nodes = {(0, i): h for i, h in enumerate(hashes)}
        level, width = 0, len(hashes)
        while width > 1:
            for i in range(width // 2):
                self.nodes[(level + 1, i)] = hash_children(
                    self.nodes[(level, 2 * i)], self.nodes[(level, 2 * i + 1)]
                )
            level, width = level + 1, width // 2

    def read(self, wanted) -> dict:
        return {node: self.nodes[node] for node in wanted if node in self.nodes}


@pytest.fixture
def vectors(monkeypatch) -> list[bytes]:
    hashes = [hash_leaf(leaf) for leaf in LEAVES]
    monkeypatch.setattr(tree, "_read_nodes", MemoryNodes(hashes).read)
    return hashes


def test_roots_match_the_published_vectors(vectors):
    for size in range(9):
        assert root_from_leaf_hashes(vectors[:size]) == ROOTS[size]
        assert tree.tree_root(size=size) == ROOTS[size]
        assert ref_root(vectors[:size]) == ROOTS[size]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION)
def test_inclusion_proofs_match_the_published_vectors(vectors, index, size, proof):
    expected = [bytes.fromhex(H[p]) for p in proof]

    assert tree.tree_inclusion_proof(index=index, size=size) == expected
    verify_inclusion(
        leaf_hash=vectors[index], index=index, tree_size=size, proof=expected, root=ROOTS[size]
    )


@pytest.mark.parametrize(("first", "second", "proof"), CONSISTENCY)
def test_consistency_proofs_match_the_published_vectors(vectors, first, second, proof):
    expected = [bytes.fromhex(H[p]) for p in proof]

    assert tree.tree_consistency_proof(first=first, second=second) == expected
    verify_consistency(
        first_size=first,
        second_size=second,
        proof=expected,
        first_root=ROOTS[first],
        second_root=ROOTS[second],
    )


@settings(max_examples=200, deadline=None)
@given(size=st.integers(1, 300), data=st.data())
def test_proofs_equal_the_recursive_reference_and_verify(size, data):
    hashes = [hashlib.sha256(i.to_bytes(4, "big")).digest() for i in range(size)]
    nodes = MemoryNodes(hashes)
    index = data.draw(st.integers(0, size - 1))
    first = data.draw(st.integers(0, size))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(tree, "_read_nodes", nodes.read)
        root = tree.tree_root(size=size)
        path = tree.tree_inclusion_proof(index=index, size=size)
        consistency = tree.tree_consistency_proof(first=first, second=size)
        first_root = tree.tree_root(size=first)

    assert root == ref_root(hashes) == root_from_leaf_hashes(hashes)
    assert path == ref_path(index, hashes)
    assert consistency == ref_consistency(first, hashes)
    verify_inclusion(leaf_hash=hashes[index], index=index, tree_size=size, proof=path, root=root)
    verify_consistency(
        first_size=first,
        second_size=size,
        proof=consistency,
        first_root=first_root,
        second_root=root,
    )
    # a wrong leaf, a wrong index, a flipped proof hash or a wrong root is refused
    with pytest.raises(ProofError):
        verify_inclusion(
            leaf_hash=hash_leaf(b"other"), index=index, tree_size=size, proof=path, root=root
        )
    if path:
        bad = [*path[:-1], bytes(32)]
        with pytest.raises(ProofError):
            verify_inclusion(
                leaf_hash=hashes[index], index=index, tree_size=size, proof=bad, root=root
            )
    if 0 < first < size:
        with pytest.raises(ProofError):
            verify_consistency(
                first_size=first,
                second_size=size,
                proof=consistency,
                first_root=hash_leaf(b"forged"),
                second_root=root,
            )


# --- the stored tree, extended by the checkpointer ----------------------------------------


@postgres_only()
@pytest.mark.django_db
def test_the_stored_tree_extended_in_uneven_steps_proves_every_size():
    append(45)
    leaf_hashes = [
        bytes(h) for h in LedgerEntry.objects.order_by("seq").values_list("leaf_hash", flat=True)
    ]
    rng = random.Random(9162)
    size = 0
    while size < 45:
        size = tree.tree_extend(
            through_size=min(45, size + rng.randint(1, 9)), batch=rng.randint(1, 4)
        )
        assert tree.tree_size() == size
        assert tree.tree_root(size=size) == ref_root(leaf_hashes[:size])
    for size in range(1, 46):
        for index in range(size):
            assert tree.tree_inclusion_proof(index=index, size=size) == ref_path(
                index, leaf_hashes[:size]
            )
        for first in range(size + 1):
            assert tree.tree_consistency_proof(first=first, second=size) == ref_consistency(
                first, leaf_hashes[:size]
            )
    # complete subtrees only: 45 leaves, 22 + 11 + 5 + 2 + 1 nodes above them
    assert LedgerTreeNode.objects.count() == 45 + 22 + 11 + 5 + 2 + 1


@postgres_only()
@pytest.mark.django_db
def test_a_proof_reads_its_nodes_in_one_query(django_assert_num_queries):
    append(20)
    tree.tree_extend(through_size=20)

    with django_assert_num_queries(1):
        tree.tree_inclusion_proof(index=6, size=19)
    with django_assert_num_queries(1):
        tree.tree_consistency_proof(first=7, second=19)


@postgres_only()
@pytest.mark.django_db
def test_the_tree_refuses_to_extend_over_a_gap_in_the_entries():
    append(5)
    with tampering():
        sql(f"DELETE FROM {TABLE} WHERE seq = 3", [])  # noqa: S608

    with pytest.raises(tree.TreeError, match="#3 is missing"), transaction.atomic():
        tree.tree_extend(through_size=5)
