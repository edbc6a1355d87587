"""An in-memory Hamming-distance index over fixed-length binary fingerprints.

Rows are appended, never rebuilt: each intake adds its fingerprints and the index answers
"every row within distance r of this value" exactly (a linear scan with hardware popcount,
vectorised over 64-bit words). Callers keep their own row -> asset mapping.
"""

from __future__ import annotations

import numpy as np


class HammingIndex:
    def __init__(self, nbytes: int, capacity: int = 1024) -> None:
        if nbytes % 8:
            raise ValueError("fingerprint length must be a multiple of 8 bytes")
        self.nbytes = nbytes
        self._words = nbytes // 8
        self._data = np.zeros((capacity, self._words), dtype=np.uint64)
        self._alive = np.zeros(capacity, dtype=bool)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def _grow(self, need: int) -> None:
        cap = self._data.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        data = np.zeros((new_cap, self._words), dtype=np.uint64)
        data[: self._n] = self._data[: self._n]
        alive = np.zeros(new_cap, dtype=bool)
        alive[: self._n] = self._alive[: self._n]
        self._data, self._alive = data, alive

    def _row(self, value: bytes) -> np.ndarray:
        if len(value) != self.nbytes:
            raise ValueError(f"expected {self.nbytes} bytes, got {len(value)}")
        return np.frombuffer(value, dtype=np.uint64)

    def add(self, value: bytes) -> int:
        """Append one fingerprint; return its row number."""
        self._grow(self._n + 1)
        self._data[self._n] = self._row(value)
        self._alive[self._n] = True
        self._n += 1
        return self._n - 1

    def remove(self, row: int) -> None:
        """Withdraw a row; it is never returned again (row numbers stay stable)."""
        self._alive[row] = False

    def search_many(self, values, radius: int, chunk: int = 1 << 16) -> set[int]:
        """Every live row within ``radius`` of any of ``values``."""
        if self._n == 0 or not values:
            return set()
        q = np.stack([self._row(v) for v in values])  # (Q, words)
        out: set[int] = set()
        for start in range(0, self._n, chunk):
            block = self._data[start:min(self._n, start + chunk)]
            dist = np.bitwise_count(block[:, None, :] ^ q[None, :, :]).sum(axis=2, dtype=np.int64)
            hit = (dist <= radius).any(axis=1) & self._alive[start:start + block.shape[0]]
            out.update((np.flatnonzero(hit) + start).tolist())
        return out

    def search(self, value: bytes, radius: int) -> list[tuple[int, int]]:
        """Every live row within Hamming distance ``radius``, as (row, distance), by row."""
        if self._n == 0:
            return []
        q = self._row(value)
        dist = np.bitwise_count(self._data[: self._n] ^ q).sum(axis=1, dtype=np.int64)
        hits = np.nonzero((dist <= radius) & self._alive[: self._n])[0]
        return [(int(r), int(dist[r])) for r in hits]
