"""Hamming distances between fingerprints, one pair at a time or many-vs-one."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np


def hamming(a: bytes, b: bytes) -> int:
    """Number of differing bits between two equal-length byte strings."""
    if len(a) != len(b):
        raise ValueError(f"cannot compare fingerprints of {len(a)} and {len(b)} bytes")
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).bit_count()


def as_matrix(values: Iterable[bytes], size: int | None = None) -> np.ndarray:
    """Stack equal-length fingerprints into an N x size uint8 matrix."""
    rows = [bytes(v) for v in values]
    if size is None:
        size = len(rows[0]) if rows else 0
    if any(len(r) != size for r in rows):
        raise ValueError(f"all fingerprints must be {size} bytes long")
    if not rows:
        return np.zeros((0, size), dtype=np.uint8)
    return np.frombuffer(b"".join(rows), dtype=np.uint8).reshape(len(rows), size)


def hamming_many(matrix: np.ndarray, query: bytes | np.ndarray) -> np.ndarray:
    """Distances (int64, length N) from each row of an N x L uint8 matrix to ``query``."""
    m = np.asarray(matrix, dtype=np.uint8)
    if isinstance(query, bytes | bytearray):
        q = np.frombuffer(query, dtype=np.uint8)
    else:
        q = np.asarray(query, dtype=np.uint8)
    if m.ndim != 2 or q.shape != (m.shape[1],):
        raise ValueError(f"query of shape {q.shape} does not fit matrix of shape {m.shape}")
    return np.bitwise_count(m ^ q).sum(axis=1, dtype=np.int64)


def hamming_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """All-pairs distances (N x M, int64) between two uint8 fingerprint matrices.

    Memory grows as N*M*L bytes; call it on blocks for large collections.
    """
    x = np.asarray(a, dtype=np.uint8)
    y = np.asarray(b, dtype=np.uint8)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"matrices of shapes {x.shape} and {y.shape} do not fit")
    return np.bitwise_count(x[:, None, :] ^ y[None, :, :]).sum(axis=2, dtype=np.int64)
