"""Tests for dedup.merkle: public vectors, known answers, and properties against
a naive RFC 6962 definition written out below."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dedup.merkle import (
    EMPTY_ROOT,
    ProofError,
    Tree,
    leaf_hash,
    node_hash,
    root_from_inclusion_proof,
    root_of,
    verify_consistency,
    verify_inclusion,
)

VECTORS = Path(__file__).parent / "vectors" / "merkle"
INCLUSION_FILES = sorted((VECTORS / "inclusion").rglob("*.json"))
CONSISTENCY_FILES = sorted((VECTORS / "consistency").rglob("*.json"))
# Pinned so that a missing or half-copied vector folder fails instead of
# quietly parametrizing over nothing.
EXPECTED_INCLUSION = 98
EXPECTED_CONSISTENCY = 98


def _b64(s: str | None) -> bytes:
    return base64.b64decode(s or "")


def _id(path: Path) -> str:
    return str(path.relative_to(VECTORS))


# --- naive RFC 6962 section 2.1, straight from the text -------------------------


def mth(d: list[bytes]) -> bytes:
    n = len(d)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return d[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return hashlib.sha256(b"\x01" + mth(d[:k]) + mth(d[k:])).digest()


def path(m: int, d: list[bytes]) -> list[bytes]:
    n = len(d)
    if n == 1:
        return []
    k = 1
    while k * 2 < n:
        k *= 2
    if m < k:
        return path(m, d[:k]) + [mth(d[k:])]
    return path(m - k, d[k:]) + [mth(d[:k])]


def subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [mth(d)]
    k = 1
    while k * 2 < n:
        k *= 2
    if m <= k:
        return subproof(m, d[:k], b) + [mth(d[k:])]
    return subproof(m - k, d[k:], False) + [mth(d[:k])]


def proof(m: int, d: list[bytes]) -> list[bytes]:
    return subproof(m, d, True)


def _leaves(n: int) -> list[bytes]:
    return [leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def _flip(b: bytes, i: int, bit: int = 1) -> bytes:
    out = bytearray(b)
    out[i] ^= bit
    return bytes(out)


# --- public vectors (transparency-dev/merkle testdata) ---------------------------


def test_vector_files_all_present() -> None:
    assert len(INCLUSION_FILES) == EXPECTED_INCLUSION
    assert len(CONSISTENCY_FILES) == EXPECTED_CONSISTENCY
    assert (VECTORS / "LICENSE").is_file()
    on_disk = sorted(p for p in VECTORS.rglob("*") if p.is_file() and p.name != "LICENSE")
    assert on_disk == sorted(INCLUSION_FILES + CONSISTENCY_FILES)


@pytest.mark.parametrize("path_", INCLUSION_FILES, ids=_id)
def test_inclusion_vector(path_: Path) -> None:
    v = json.loads(path_.read_text())
    args = (
        _b64(v["leafHash"]),
        v["leafIdx"],
        v["treeSize"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path_", CONSISTENCY_FILES, ids=_id)
def test_consistency_vector(path_: Path) -> None:
    v = json.loads(path_.read_text())
    args = (
        v["size1"],
        v["size2"],
        [_b64(p) for p in v["proof"] or []],
        _b64(v["root1"]),
        _b64(v["root2"]),
    )
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)


# --- known answers ----------------------------------------------------------------

# RFC 6962 reference leaves and roots (as used by certificate-transparency-go
# and transparency-dev/merkle); the roots also appear in the vectors above.
KAT_LEAVES = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
]
KAT_ROOTS = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def test_known_roots() -> None:
    tree = Tree()
    for data in KAT_LEAVES:
        tree.append(bytes.fromhex(data))
    for size, want in enumerate(KAT_ROOTS, 1):
        assert tree.root(size).hex() == want
        assert root_of([leaf_hash(bytes.fromhex(x)) for x in KAT_LEAVES[:size]]).hex() == want
    assert tree.root(0) == EMPTY_ROOT


def test_hash_primitives() -> None:
    assert EMPTY_ROOT == hashlib.sha256(b"").digest()
    assert leaf_hash(b"abc") == hashlib.sha256(b"\x00abc").digest()
    a, b = b"a" * 32, b"b" * 32
    assert node_hash(a, b) == hashlib.sha256(b"\x01" + a + b).digest()
    assert root_of([]) == EMPTY_ROOT


# --- Tree API ---------------------------------------------------------------------


def test_tree_basics() -> None:
    tree = Tree()
    assert tree.size == 0 and tree.root() == EMPTY_ROOT
    assert tree.append(b"x") == 0
    assert tree.append_leaf_hash(b"\x07" * 32) == 1
    assert tree.size == len(tree) == 2
    assert tree.leaf_hash_at(0) == leaf_hash(b"x")
    assert tree.leaf_hash_at(1) == b"\x07" * 32
    copy = Tree.from_leaf_hashes([tree.leaf_hash_at(0), tree.leaf_hash_at(1)])
    assert copy.root() == tree.root() == node_hash(leaf_hash(b"x"), b"\x07" * 32)


def test_tree_rejects_bad_arguments() -> None:
    tree = Tree.from_leaf_hashes(_leaves(5))
    with pytest.raises(ValueError):
        tree.append_leaf_hash(b"short")
    with pytest.raises(IndexError):
        tree.leaf_hash_at(5)
    with pytest.raises(IndexError):
        tree.leaf_hash_at(-1)
    with pytest.raises(ValueError):
        tree.root(6)
    with pytest.raises(ValueError):
        tree.root(-1)
    with pytest.raises(IndexError):
        tree.inclusion_proof(3, 3)
    with pytest.raises(ValueError):
        tree.inclusion_proof(0, 6)
    with pytest.raises(ValueError):
        tree.consistency_proof(4, 3)
    with pytest.raises(ValueError):
        tree.consistency_proof(-1)
    assert tree.consistency_proof(0) == []
    assert tree.consistency_proof(5) == []


def test_exhaustive_small_trees() -> None:
    """Every index and every size pair up to 40 leaves against the naive definitions."""
    d = _leaves(40)
    tree = Tree.from_leaf_hashes(d)
    for n in range(41):
        root = tree.root(n)
        assert root == mth(d[:n])
        for i in range(n):
            p = tree.inclusion_proof(i, n)
            assert p == path(i, d[:n])
            verify_inclusion(d[i], i, n, p, root)
            assert root_from_inclusion_proof(d[i], i, n, p) == root
        for m in range(1, n + 1):
            p = tree.consistency_proof(m, n)
            assert p == (proof(m, d[:n]) if m < n else [])
            verify_consistency(m, n, p, tree.root(m), root)
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)


def test_large_tree_matches_reference() -> None:
    n = 70_001
    d = _leaves(n)
    tree = Tree.from_leaf_hashes(d)
    for size in (1, 2, 3, 65_536, 65_537, 69_999, n):
        root = tree.root(size)
        assert root == root_of(d[:size])
        for i in {0, size // 3, size - 1}:
            verify_inclusion(d[i], i, size, tree.inclusion_proof(i, size), root)
        for old in {1, size // 2 or 1, size - 1 or 1}:
            verify_consistency(old, size, tree.consistency_proof(old, size), tree.root(old), root)


# --- properties -----------------------------------------------------------------


@st.composite
def tree_and_size(draw: st.DrawFn) -> tuple[list[bytes], int]:
    n = draw(st.integers(min_value=1, max_value=300))
    leaves = draw(st.lists(st.binary(min_size=32, max_size=32), min_size=n, max_size=n))
    size = draw(st.integers(min_value=1, max_value=n))
    return leaves, size


@settings(max_examples=150, deadline=None)
@given(tree_and_size(), st.data())
def test_tree_matches_naive_definition(case: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, size = case
    tree = Tree.from_leaf_hashes(leaves)
    d = leaves[:size]
    assert tree.root(size) == mth(d)
    assert tree.root() == mth(leaves)
    i = data.draw(st.integers(min_value=0, max_value=size - 1))
    assert tree.inclusion_proof(i, size) == path(i, d)
    m = data.draw(st.integers(min_value=1, max_value=size))
    assert tree.consistency_proof(m, size) == (proof(m, d) if m < size else [])


@settings(max_examples=150, deadline=None)
@given(tree_and_size(), st.data())
def test_inclusion_proofs_verify_and_break(case: tuple[list[bytes], int], data: st.DataObject) -> None:
    leaves, size = case
    tree = Tree.from_leaf_hashes(leaves)
    root = tree.root(size)
    i = data.draw(st.integers(min_value=0, max_value=size - 1))
    p = tree.inclusion_proof(i, size)
    verify_inclusion(leaves[i], i, size, p, root)

    for j in range(len(p)):
        for byte in range(32):
            bad = list(p)
            bad[j] = _flip(p[j], byte)
            with pytest.raises(ProofError):
                verify_inclusion(leaves[i], i, size, bad, root)
    byte = data.draw(st.integers(min_value=0, max_value=31))
    with pytest.raises(ProofError):
        verify_inclusion(_flip(leaves[i], byte), i, size, p, root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[i], i, size, p, _flip(root, byte))
    with pytest.raises(ProofError):
        verify_inclusion(leaves[i], i, size, p + [root], root)
    if p:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[i], i, size, p[:-1], root)
    with pytest.raises(ProofError):
        verify_inclusion(leaves[i], size, size, p, root)
    other = data.draw(st.integers(min_value=0, max_value=size - 1))
    if leaves[other] != leaves[i]:
        with pytest.raises(ProofError):
            verify_inclusion(leaves[other], i, size, p, root)


@settings(max_examples=150, deadline=None)
@given(tree_and_size(), st.data())
def test_consistency_proofs_verify_and_break(
    case: tuple[list[bytes], int], data: st.DataObject
) -> None:
    leaves, size2 = case
    tree = Tree.from_leaf_hashes(leaves)
    size1 = data.draw(st.integers(min_value=1, max_value=size2))
    root1, root2 = tree.root(size1), tree.root(size2)
    p = tree.consistency_proof(size1, size2)
    verify_consistency(size1, size2, p, root1, root2)

    for j in range(len(p)):
        for byte in range(32):
            bad = list(p)
            bad[j] = _flip(p[j], byte)
            with pytest.raises(ProofError):
                verify_consistency(size1, size2, bad, root1, root2)
    byte = data.draw(st.integers(min_value=0, max_value=31))
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, p, _flip(root1, byte), root2)
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, p, root1, _flip(root2, byte))
    with pytest.raises(ProofError):
        verify_consistency(size1, size2, p + [root2], root1, root2)
    if p:
        with pytest.raises(ProofError):
            verify_consistency(size1, size2, p[:-1], root1, root2)
    if size1 < size2:
        with pytest.raises(ProofError):
            verify_consistency(size2, size1, p, root2, root1)


# --- verifier edge cases ------------------------------------------------------


def test_inclusion_edge_cases() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, [], h)
    with pytest.raises(ProofError, match="not inside"):
        verify_inclusion(h, 0, 0, [], EMPTY_ROOT)
    with pytest.raises(ProofError, match="not inside"):
        verify_inclusion(h, -1, 1, [], h)
    with pytest.raises(ProofError, match="leaf hash"):
        verify_inclusion(h[:31], 0, 1, [], h[:31])
    with pytest.raises(ProofError, match="proof hash 0"):
        verify_inclusion(h, 0, 2, [b""], h)
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(h, 0, 1, [h], h)
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(h, 0, 2, [], h)


def test_consistency_edge_cases() -> None:
    tree = Tree.from_leaf_hashes(_leaves(8))
    r1, r8 = tree.root(1), tree.root(8)
    verify_consistency(1, 1, [], b"anything", b"anything")
    verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], r1, r1)
    with pytest.raises(ProofError, match="meaningless"):
        verify_consistency(0, 8, [], EMPTY_ROOT, r8)
    with pytest.raises(ProofError, match="smaller"):
        verify_consistency(8, 1, [], r8, r1)
    with pytest.raises(ProofError, match="not empty"):
        verify_consistency(1, 1, [r1], r1, r1)
    with pytest.raises(ProofError, match="roots differ"):
        verify_consistency(1, 1, [], r1, r8)
    with pytest.raises(ProofError, match="is empty"):
        verify_consistency(1, 8, [], r1, r8)
    with pytest.raises(ProofError, match="negative"):
        verify_consistency(-1, 8, [], r1, r8)
