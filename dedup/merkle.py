"""RFC 6962 / RFC 9162 Merkle tree hashing, proofs and proof verification.

The log's whole trust story rests on these few functions, so they are kept
small, dependency-free and exact: the tree shape is the one of RFC 6962
section 2.1 (split at the largest power of two below the size), leaves and
interior nodes are domain-separated by a 0x00 / 0x01 prefix, and the
verifiers follow the RFC 9162 algorithms step by step.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "ProofError",
    "Tree",
    "leaf_hash",
    "node_hash",
    "root_from_inclusion_proof",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]


class ProofError(ValueError):
    """A proof, or the sizes and roots it is checked against, does not hold."""


def leaf_hash(entry: bytes) -> bytes:
    """Hash of a log entry: SHA-256(0x00 || entry)."""
    return hashlib.sha256(b"\x00" + entry).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: SHA-256(0x01 || left || right)."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly below n (n >= 2): where RFC 6962 splits."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaf_hashes: Sequence[bytes]) -> bytes:
    """Root of the tree over leaf_hashes, computed straight from the definition.

    Kept as a plain reference for tests and one-off checks; Tree is the fast path.
    """
    n = len(leaf_hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return bytes(leaf_hashes[0])
    k = _split(n)
    return node_hash(root_of(leaf_hashes[:k]), root_of(leaf_hashes[k:]))


class Tree:
    """Append-only in-memory Merkle tree over leaf hashes.

    Level k stores, back to back, the hashes of every complete subtree of 2**k
    leaves built so far (entry i covers leaves [i*2**k, (i+1)*2**k)). Any
    node of the tree at any earlier size is either one of those complete
    subtrees or lies on that size's right border, so roots and proofs cost
    O(log n) hash operations and never rebuild anything.
    """

    def __init__(self) -> None:
        # bytearrays of concatenated 32-byte hashes: about 64 bytes per leaf
        # in total, instead of the ~150 a list of bytes objects would cost.
        self._levels: list[bytearray] = [bytearray()]
        self._size = 0

    @classmethod
    def from_leaf_hashes(cls, leaf_hashes: Iterable[bytes]) -> Tree:
        tree = cls()
        for h in leaf_hashes:
            tree.append_leaf_hash(h)
        return tree

    @property
    def size(self) -> int:
        return self._size

    def __len__(self) -> int:
        return self._size

    def append(self, entry: bytes) -> int:
        """Append a log entry (hashed as a leaf); return its index."""
        return self.append_leaf_hash(leaf_hash(entry))

    def append_leaf_hash(self, h: bytes) -> int:
        """Append an already computed leaf hash; return its index."""
        if len(h) != HASH_SIZE:
            raise ValueError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")
        index = self._size
        self._levels[0] += h
        self._size += 1
        # Each trailing 1 bit of the new size completes one subtree one level up.
        n, level = self._size, 0
        while n & 1 == 0:
            below = self._levels[level]
            parent = node_hash(below[-64:-32], below[-32:])
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            self._levels[level + 1] += parent
            n >>= 1
            level += 1
        return index

    def extend_leaf_hashes(self, hashes: bytes) -> None:
        """Append many leaf hashes given back to back: the same tree as appending them one by
        one, built a level at a time (an auditor appends a million)."""
        if len(hashes) % HASH_SIZE:
            raise ValueError(f"leaf hashes must be a multiple of {HASH_SIZE} bytes, got {len(hashes)}")
        self._levels[0] += hashes
        self._size += len(hashes) // HASH_SIZE
        sha = hashlib.sha256
        level = 0
        # Level k holds size // 2**k complete subtrees; fill in the parents now complete.
        while (want := self._size >> (level + 1)) > 0:
            if level + 1 == len(self._levels):
                self._levels.append(bytearray())
            below, above = self._levels[level], self._levels[level + 1]
            have = len(above) // HASH_SIZE
            if have == want:
                break
            above += b"".join([sha(b"\x01" + below[2 * HASH_SIZE * j : 2 * HASH_SIZE * (j + 1)]).digest()
                               for j in range(have, want)])
            level += 1

    def leaf_hash_at(self, index: int) -> bytes:
        self._check_index(index, self._size)
        return self._node(0, index)

    def root(self, size: int | None = None) -> bytes:
        """Root hash of the tree as it was at `size` leaves (default: now)."""
        size = self._check_size(size)
        return self._range_hash(0, size, {}) if size else EMPTY_ROOT

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path for leaf `index` in the tree of `size` leaves (RFC 6962 PATH)."""
        size = self._check_size(size)
        self._check_index(index, size)
        spine: dict[int, bytes] = {}
        proof: list[bytes] = []
        lo, hi = 0, size
        # Walk from the root down to the leaf, collecting the sibling of each
        # step; the proof is ordered leaf-up, hence the final reverse.
        while hi - lo > 1:
            k = _split(hi - lo)
            if index < lo + k:
                proof.append(self._range_hash(lo + k, hi, spine))
                hi = lo + k
            else:
                proof.append(self._range_hash(lo, lo + k, spine))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof between two sizes of this tree (RFC 6962 PROOF).

        Empty when the sizes are equal or old_size is 0, which is what the
        verifier expects in those cases.
        """
        new_size = self._check_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(f"need 0 <= old_size <= new_size, got {old_size} and {new_size}")
        if old_size == 0 or old_size == new_size:
            return []
        spine: dict[int, bytes] = {}
        proof: list[bytes] = []
        lo, hi, m = 0, new_size, old_size
        whole_old_tree = True  # RFC 6962's `b`: is [lo, lo+m) still the old root?
        while m != hi - lo:
            k = _split(hi - lo)
            if m <= k:
                proof.append(self._range_hash(lo + k, hi, spine))
                hi = lo + k
            else:
                proof.append(self._range_hash(lo, lo + k, spine))
                lo, m = lo + k, m - k
                whole_old_tree = False
        if not whole_old_tree:
            proof.append(self._range_hash(lo, hi, spine))
        proof.reverse()
        return proof

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ValueError(f"size {size} outside 0..{self._size}")
        return size

    @staticmethod
    def _check_index(index: int, size: int) -> None:
        if not 0 <= index < size:
            raise IndexError(f"leaf index {index} outside tree of size {size}")

    def _node(self, level: int, i: int) -> bytes:
        return bytes(self._levels[level][i * HASH_SIZE : (i + 1) * HASH_SIZE])

    def _range_hash(self, lo: int, hi: int, spine: dict[int, bytes]) -> bytes:
        """Hash of the subtree over leaves [lo, hi).

        [lo, hi) must be a node of the RFC 6962 tree whose size is hi: either a
        complete aligned subtree (one lookup) or a node on the right border.
        Border nodes are filled into `spine` (keyed by lo) all at once, so one
        proof pays O(log n) hashes for all of them together.
        """
        n = hi - lo
        if n & (n - 1) == 0 and lo % n == 0:
            return self._node(n.bit_length() - 1, lo // n)
        if lo not in spine:
            # The border decomposes into complete subtrees of decreasing size,
            # one per set bit of hi; fold them right to left.
            starts: list[int] = []
            hashes: list[bytes] = []
            start = 0
            for level in range(hi.bit_length() - 1, -1, -1):
                if hi >> level & 1:
                    starts.append(start)
                    hashes.append(self._node(level, start >> level))
                    start += 1 << level
            acc = hashes[-1]
            for s, h in zip(reversed(starts[:-1]), reversed(hashes[:-1])):
                acc = node_hash(h, acc)
                spine[s] = acc
        return spine[lo]


def _check_proof_hashes(proof: Sequence[bytes]) -> None:
    for i, p in enumerate(proof):
        if len(p) != HASH_SIZE:
            raise ProofError(f"proof hash {i} is {len(p)} bytes, want {HASH_SIZE}")


def root_from_inclusion_proof(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes:
    """Root implied by an inclusion proof (RFC 9162 section 2.1.3.2, steps 1-4)."""
    if not 0 <= index < size:
        raise ProofError(f"leaf index {index} is not inside a tree of size {size}")
    if len(leaf_hash) != HASH_SIZE:
        raise ProofError(f"leaf hash is {len(leaf_hash)} bytes, want {HASH_SIZE}")
    _check_proof_hashes(proof)
    fn, sn = index, size - 1
    r = leaf_hash
    for p in proof:
        if sn == 0:
            raise ProofError(f"inclusion proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"inclusion proof too short: {len(proof)} hashes")
    return r


def verify_inclusion(
    leaf_hash: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that leaf_hash sits at `index` in the tree of `size` with `root`."""
    calculated = root_from_inclusion_proof(leaf_hash, index, size, proof)
    if calculated != root:
        raise ProofError(
            f"inclusion proof leads to root {calculated.hex()}, not {bytes(root).hex()}"
        )


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Check that the tree (size2, root2) extends the tree (size1, root1).

    The general case is RFC 9162 section 2.1.4.2, which is only defined for
    0 < size1 < size2. Edge cases: equal sizes need an empty proof and equal
    roots (for size 0 that root must be the empty-tree hash), and a proof
    from the empty tree proves nothing, so it is refused.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must not be negative: {size1}, {size2}")
    if size2 < size1:
        raise ProofError(f"size2 ({size2}) is smaller than size1 ({size1})")
    if size1 == size2:
        if proof:
            raise ProofError(f"sizes are equal ({size1}) but the proof is not empty")
        if root1 != root2:
            raise ProofError(f"sizes are equal ({size1}) but the roots differ")
        if size1 == 0 and root1 != EMPTY_ROOT:
            raise ProofError("root of an empty tree must be SHA-256 of the empty string")
        return
    if size1 == 0:
        raise ProofError("a consistency proof from the empty tree is meaningless")
    if not proof:
        raise ProofError("consistency proof is empty")
    _check_proof_hashes(proof)

    path = list(proof)
    if size1 & (size1 - 1) == 0:
        # The old root is itself a node of the new tree and is left out of the proof.
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(f"consistency proof too long: {len(proof)} hashes")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while fn and not fn & 1:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"consistency proof too short: {len(proof)} hashes")
    if fr != root1:
        raise ProofError(f"consistency proof does not lead to root1 {bytes(root1).hex()}")
    if sr != root2:
        raise ProofError(f"consistency proof does not lead to root2 {bytes(root2).hex()}")
