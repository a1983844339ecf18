"""RFC 9162 Merkle tree hashing and proof verification (sections 2.1.1, 2.1.3.2, 2.1.4.2)."""

import hashlib
from collections.abc import Sequence


class ProofError(ValueError):
    """A proof that does not hold, or is malformed."""


def hash_leaf(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def hash_children(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


EMPTY_ROOT = hashlib.sha256(b"").digest()


def root_from_leaf_hashes(leaf_hashes: Sequence[bytes]) -> bytes:
    """The root of the tree over these leaf hashes, bottom-up in one pass per level."""
    if not leaf_hashes:
        return EMPTY_ROOT
    level = list(leaf_hashes)
    while len(level) > 1:
        paired = [hash_children(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            paired.append(level[-1])  # the right edge goes up alone, as RFC 9162 splits
        level = paired
    return level[0]


def verify_inclusion(
    *, leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """RFC 9162 2.1.3.2; raises ProofError unless `proof` proves leaf `index` in the
    tree of `tree_size` with `root`."""
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = hash_children(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = hash_children(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise ProofError("inclusion proof does not reach the root")


def verify_consistency(
    *,
    first_size: int,
    second_size: int,
    proof: Sequence[bytes],
    first_root: bytes,
    second_root: bytes,
) -> None:
    """RFC 9162 2.1.4.2; raises ProofError unless `proof` shows the tree of
    `second_size` with `second_root` extends the one of `first_size` with `first_root`."""
    if not 0 <= first_size <= second_size:
        raise ProofError(f"cannot go from size {first_size} to size {second_size}")
    if first_size == second_size:
        if proof:
            raise ProofError("a consistency proof between equal sizes is empty")
        if first_root != second_root:
            raise ProofError("two trees of the same size have different roots")
        return
    if first_size == 0:
        if proof:
            raise ProofError("a consistency proof from the empty tree is empty")
        return
    if not proof:
        raise ProofError("consistency proof is empty")
    path = list(proof)
    if first_size & (first_size - 1) == 0:  # a power of two: the old root is a node
        path.insert(0, first_root)
    fn, sn = first_size - 1, second_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError("consistency proof is longer than needed")
        if fn & 1 or fn == sn:
            fr = hash_children(c, fr)
            sr = hash_children(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = hash_children(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError("consistency proof is shorter than needed")
    if fr != first_root:
        raise ProofError("consistency proof does not reach the earlier root")
    if sr != second_root:
        raise ProofError("consistency proof does not reach the later root")
