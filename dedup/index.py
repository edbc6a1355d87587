"""Exact Hamming-radius search over fixed-length binary fingerprints, sub-linear in the rows.

The answer to "every live row within distance r of q" is exactly brute force's, found by
multi-index hashing (Norouzi, Punjani and Fleet, 2012): each row is cut into ``m`` disjoint
bit chunks; if a row is within ``r`` of ``q``, its chunk distances add up to at most ``r``.
Give chunk i a threshold t_i with sum(t_i + 1) = r + 1: a row further than t_i from ``q``
in every chunk would be at least r + 1 away, so every row within ``r`` is within t_i of
``q`` in some chunk (pigeonhole). Probing, in each chunk's table, every key within t_i of
the query's chunk finds them all; the candidates are then checked with the full distance.
Nothing is approximate. (Thresholds of r // m in every chunk would also be exact, but
probe up to m - 1 chunks one bit further than needed.)

Rows are appended, never rewritten. The newest rows (the *tail*) are scanned linearly; when
the tail fills it is sealed into a *segment* with its own chunk tables, and a segment merges
into the one before it once it has a quarter of that one's rows, so there are only a few
segments to probe and each row is re-tabled a bounded number of times on average. A segment's chunk width
follows its size (about log2 of it, so a table has roughly one row per key) and the radius
it is tuned for. ``add_many`` on an empty index, as on a restart, builds one segment.

Removed rows keep their numbers and are filtered out of every answer.

A *banded* index (``bands=m``) answers a narrower question: every live row within ``r`` of
``q`` that is also equal to ``q`` on at least one of ``m`` fixed bands of bits (the chunks
above, all probed at threshold 0). That is a matching rule's choice, not an approximation:
the answer is exactly the rows that meet both conditions, which a brute-force scan checks
the same way. It costs ``m`` exact lookups per query however large the radius, where the
exact ball of a 64-bit radius-8 search probes hundreds of keys.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, Sequence

import numpy as np

from dedup import index_kernels as kernels

#: Rows kept out of the chunk tables and scanned linearly, before they are sealed.
TAIL_ROWS = 4096
#: Widest chunk: a table has 2**bits + 1 offsets, so this bounds a table at 64 MiB.
MAX_CHUNK_BITS = 24
#: A segment merges into the one before it once it holds a quarter of that one's rows: few
#: segments to probe (each costs a search its probes), each row re-tabled a few times.
_FANOUT = 4
#: Largest tail rows x queries scanned linearly; beyond it the tail is tabled first.
_SCAN_BUDGET = 1 << 21


@dataclass(frozen=True)
class _Chunk:
    word: int  # the 64-bit word holding the chunk's lowest bit
    shift: int
    bits: int  # may run on into the next word


class _Segment:
    """Rows [start, stop) with one sorted table per chunk: rows ordered by chunk value."""

    def __init__(self, data: np.ndarray, start: int, stop: int, chunks: tuple[_Chunk, ...],
                 sketched: bool = False) -> None:
        self.start, self.stop, self.chunks = start, stop, chunks
        self.order: list[np.ndarray] = []
        self.offsets: list[np.ndarray] = []
        self.sketches: list[np.ndarray] = []
        for c in chunks:
            order, offsets, sketch = kernels.table(data, start, stop, c.word, c.shift, c.bits, sketched)
            self.order.append(order)
            self.offsets.append(offsets.astype(np.int32) if stop - start < 2**31 else offsets)
            if sketched:
                self.sketches.append(sketch)

    def sketch(self, data: np.ndarray) -> None:
        """Each table's sketches (``kernels.table``'s), from the rows and the table's order: for a
        segment loaded from a saved state, which keeps no sketches."""
        self.sketches = [kernels.sketches(data, self.start, order, c.shift, c.bits)
                         for c, order in zip(self.chunks, self.order)]

    @property
    def size(self) -> int:
        return self.stop - self.start

    def nbytes(self) -> int:
        return sum(a.nbytes for a in (*self.order, *self.offsets, *self.sketches))


class HammingIndex:
    """Rows of ``nbytes``-byte fingerprints, searchable by Hamming radius.

    ``radius`` is the distance searches are usually made at; it only tunes the chunk
    layout (any radius is answered exactly). With ``bands``, an answer holds only the rows
    also equal to the query on one of that many fixed bands (module docstring).

    ``sketched`` (8-byte rows only) keeps beside each table, in the table's order, 32 more
    bits of every row: a bucket's candidates are then read in one run and most are set
    aside on those bits, where otherwise each costs a random read of its row. That is what
    a large table of small-radius searches needs (4 bytes per row and table); the answers
    are the same.
    """

    def __init__(self, nbytes: int, capacity: int = 1024, *, radius: int | None = None,
                 tail: int = TAIL_ROWS, bands: int | None = None, sketched: bool = False) -> None:
        if nbytes <= 0 or nbytes % 8:
            raise ValueError("fingerprint length must be a multiple of 8 bytes")
        if bands is not None and not (1 <= bands <= nbytes * 8 and -(-nbytes * 8 // bands) <= MAX_CHUNK_BITS):
            raise ValueError(f"{bands} bands of a {nbytes * 8}-bit row: each must be 1 to {MAX_CHUNK_BITS} bits")
        if sketched and (nbytes != 8 or bands is None):
            raise ValueError("sketches are kept for banded indexes of 8-byte rows only")
        self.sketched = sketched
        #: The fixed bands of a banded index (None: an exact index, laid out per segment).
        self.bands = _place(_widths(nbytes * 8, bands)) if bands else None
        self.nbytes = nbytes
        self.bits = nbytes * 8
        self.radius = self.bits // 8 if radius is None else radius
        self._words = nbytes // 8
        self._data = np.zeros((max(1, capacity), self._words), dtype=np.uint64)
        self._alive = np.zeros(max(1, capacity), dtype=bool)
        self._n = 0
        self._tail = max(1, tail)
        self._segments: list[_Segment] = []
        self._sealed = 0  # rows [0, _sealed) are in segments

    def __len__(self) -> int:
        return self._n

    @property
    def live(self) -> int:
        return int(self._alive[: self._n].sum())

    def memory_bytes(self) -> int:
        """Bytes held by rows and chunk tables (for metrics and benchmarks)."""
        return self._data.nbytes + self._alive.nbytes + sum(s.nbytes() for s in self._segments)

    # -- writing -----------------------------------------------------------------------

    def _grow(self, need: int) -> None:
        cap = self._data.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap + cap // 2)  # x1.5: at tens of millions of rows, doubling wastes too much
        data = np.zeros((new_cap, self._words), dtype=np.uint64)
        data[: self._n] = self._data[: self._n]
        alive = np.zeros(new_cap, dtype=bool)
        alive[: self._n] = self._alive[: self._n]
        self._data, self._alive = data, alive

    def _row(self, value: bytes) -> np.ndarray:
        if len(value) != self.nbytes:
            raise ValueError(f"expected {self.nbytes} bytes, got {len(value)}")
        return np.frombuffer(value, dtype=np.uint64)

    def _rows(self, values) -> np.ndarray:
        """(n, words) uint64 from an (n, nbytes) uint8 array or a sequence of bytes."""
        if isinstance(values, np.ndarray):
            arr = np.ascontiguousarray(values)
            if arr.dtype == np.uint64 and arr.ndim == 2 and arr.shape[1] == self._words:
                return arr
            if arr.dtype != np.uint8 or arr.ndim != 2 or arr.shape[1] != self.nbytes:
                raise ValueError(f"expected an (n, {self.nbytes}) uint8 array, got {arr.dtype} {arr.shape}")
            return arr.view(np.uint64)
        values = list(values)
        joined = b"".join(values)
        if len(joined) != len(values) * self.nbytes:
            for v in values:
                self._row(v)  # names the offending length
        return np.frombuffer(joined, dtype=np.uint64).reshape(len(values), self._words)

    def add(self, value: bytes) -> int:
        """Append one fingerprint; return its row number."""
        return self.add_many(self._row(value)[None, :])

    def add_many(self, values) -> int:
        """Append fingerprints (an (n, nbytes) uint8 array or a sequence of bytes); return
        the first new row number (the rest follow in order)."""
        rows = self._rows(values)
        first = self._n
        k = rows.shape[0]
        if k == 0:
            return first
        self._grow(self._n + k)
        self._data[self._n:self._n + k] = rows
        self._alive[self._n:self._n + k] = True
        self._n += k
        if self._n - self._sealed >= self._tail:
            self._seal()
        return first

    def state(self) -> dict[str, np.ndarray]:
        """Rows, live flags and every segment's chunk tables, as arrays (views, not copies):
        ``load_state`` on an empty index restores this one without rebuilding anything."""
        out = {"data": self._data[:self._n], "alive": self._alive[:self._n],
               "sealed": np.array([self._sealed], dtype=np.int64)}
        for i, seg in enumerate(self._segments):
            out[f"seg{i}.bounds"] = np.array([seg.start, seg.stop], dtype=np.int64)
            out[f"seg{i}.chunks"] = np.array([(c.word, c.shift, c.bits) for c in seg.chunks], dtype=np.int64)
            for j, (order, offsets) in enumerate(zip(seg.order, seg.offsets)):
                out[f"seg{i}.order{j}"], out[f"seg{i}.offsets{j}"] = order, offsets
        return out

    def load_state(self, state: dict[str, np.ndarray]) -> None:
        """Become the index ``state()`` was taken of (this one must be empty). The arrays'
        shapes and bounds are checked, so a damaged file is refused (ValueError), not searched."""
        if self._n:
            raise ValueError("load_state() fills an empty index")
        data, alive = state["data"], state["alive"]
        n = data.shape[0] if data.ndim == 2 else -1
        if data.dtype != np.uint64 or data.ndim != 2 or data.shape[1] != self._words or alive.shape != (n,) \
                or alive.dtype != bool:
            raise ValueError(f"rows of {self.nbytes} bytes expected, got {data.dtype} {data.shape}")
        sealed = int(state["sealed"][0])
        segments, at = [], 0
        while f"seg{len(segments)}.bounds" in state:
            i = len(segments)
            start, stop = (int(v) for v in state[f"seg{i}.bounds"])
            chunks = tuple(_Chunk(int(w), int(sh), int(b)) for w, sh, b in state[f"seg{i}.chunks"])
            if start != at or not start < stop <= n or not chunks:
                raise ValueError(f"segment {i} does not follow the one before it")
            if self.bands is not None and chunks != self.bands:
                raise ValueError(f"segment {i} is not tabled by this index's bands")
            seg = _Segment.__new__(_Segment)
            seg.start, seg.stop, seg.chunks, seg.order, seg.offsets = start, stop, chunks, [], []
            for j, c in enumerate(chunks):
                order, offsets = state[f"seg{i}.order{j}"], state[f"seg{i}.offsets{j}"]
                if not (0 < c.bits <= MAX_CHUNK_BITS and c.word * 64 + c.shift + c.bits <= self.bits) \
                        or order.shape != (stop - start,) or offsets.shape != ((1 << c.bits) + 1,) \
                        or offsets[0] != 0 or offsets[-1] != stop - start or (np.diff(offsets) < 0).any() \
                        or (order.size and int(order.max()) >= stop - start):
                    raise ValueError(f"segment {i}, chunk {j}: tables do not fit its rows")
                seg.order.append(order)
                seg.offsets.append(offsets)
            seg.sketches = []
            segments.append(seg)
            at = stop
        if at != sealed or sealed > n:
            raise ValueError("the segments do not cover the sealed rows")
        self._grow(n)
        self._data[:n], self._alive[:n] = data, alive
        if self.sketched:
            for seg in segments:  # derived from the rows, so never saved (and never out of step)
                seg.sketch(self._data)
        self._n, self._sealed, self._segments = n, sealed, segments

    def remove(self, row: int) -> None:
        """Withdraw a row; it is never returned again (row numbers stay stable)."""
        if not 0 <= row < self._n:
            raise IndexError(f"no row {row}")
        self._alive[row] = False

    def _seal(self) -> None:
        """Table the tail as a segment, then merge segments of similar size."""
        self._segments.append(self._build(self._sealed, self._n))
        self._sealed = self._n
        while len(self._segments) >= 2 and self._segments[-1].size * _FANOUT >= self._segments[-2].size:
            start, stop = self._segments[-2].start, self._segments.pop().stop
            # The two segments' tables go before the merged ones are built (from the rows,
            # not from them), so a merge of tens of millions of rows never holds both.
            del self._segments[-1]
            try:
                self._segments.append(self._build(start, stop))
            except BaseException:
                self._sealed = start  # rows without tables are scanned as the tail: slower, never wrong
                raise

    def _build(self, start: int, stop: int) -> _Segment:
        chunks = self.bands if self.bands is not None else _layout(self.bits, self.radius, stop - start)
        return _Segment(self._data, start, stop, chunks, self.sketched)

    # -- reading -----------------------------------------------------------------------

    def search(self, value: bytes, radius: int) -> list[tuple[int, int]]:
        """Every live row within Hamming distance ``radius``, as (row, distance), by row."""
        _, rows, dist = self.search_batch(self._row(value)[None, :], radius)
        return list(zip(rows.tolist(), dist.tolist()))

    def search_many(self, values: Iterable[bytes], radius: int) -> set[int]:
        """Every live row within ``radius`` of any of ``values``."""
        values = list(values)
        if not values:
            return set()
        _, rows, _ = self.search_batch(self._rows(values), radius)
        return set(rows.tolist())

    def search_batch(self, queries, radius: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """All (query, row) pairs within ``radius``: three int64 arrays (query number, row,
        distance), sorted by query then row. ``queries`` is an (n, nbytes) uint8 array or a
        sequence of bytes."""
        q = self._rows(queries)
        empty = (np.zeros(0, np.int64),) * 3
        if self._n == 0 or q.shape[0] == 0 or radius < 0:
            return empty
        q = np.ascontiguousarray(q)
        if (self._n - self._sealed) * q.shape[0] > _SCAN_BUDGET:
            self._seal()  # a big batch of queries pays for tabling the tail many times over
        parts = [self._scan(q, self._sealed, self._n, radius)]
        for seg in self._segments:
            parts.append(self._probe(seg, q, radius))
        qi = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        dist = np.concatenate([p[2] for p in parts])
        keep = self._alive[rows]
        qi, rows, dist = qi[keep], rows[keep], dist[keep]
        order = np.lexsort((rows, qi))
        return qi[order], rows[order], dist[order]

    def _scan(self, q: np.ndarray, start: int, stop: int, radius: int):
        """Linear scan of rows [start, stop) (the tail, or a segment probing would not pay)."""
        qi, rows, dist = kernels.scan(self._data, start, stop, q, radius)
        if self.bands is None or not qi.size:
            return qi, rows, dist
        same = np.zeros(qi.size, dtype=bool)
        for c in self.bands:
            same |= _keys(q, c)[qi] == _keys(self._data[rows], c)
        return qi[same], rows[same], dist[same]

    def _probe(self, seg: _Segment, q: np.ndarray, radius: int):
        thresholds = [0] * len(seg.chunks) if self.bands is not None else _thresholds(len(seg.chunks), radius)
        plan = [(c, t, order, offsets) for c, t, order, offsets
                in zip(seg.chunks, thresholds, seg.order, seg.offsets) if t >= 0]
        probes = sum(_ball_size(c.bits, t) for c, t, _, _ in plan)
        # Expected candidates per query: each probe finds size / 2**bits rows on average.
        expected = sum(_ball_size(c.bits, t) * seg.size / (1 << c.bits) for c, t, _, _ in plan)
        if probes + expected >= seg.size:
            return self._scan(q, seg.start, seg.stop, radius)
        if seg.sketches:
            parts = [kernels.probe_sketched(self._data, seg.start, q, _keys(q, c),
                                            kernels.row_sketches(q, c.shift, c.bits), order, offsets,
                                            sketch, radius)
                     for (c, _, order, offsets), sketch in zip(plan, seg.sketches)]
        else:
            parts = [kernels.probe(self._data, seg.start, q, _keys(q, c), _ball(c.bits, t), order, offsets, radius)
                     for c, t, order, offsets in plan]
        qi = np.concatenate([p[0] for p in parts])
        rows = np.concatenate([p[1] for p in parts])
        dist = np.concatenate([p[2] for p in parts])
        # A row near the query in several chunks was found once per chunk.
        uniq = np.unique(qi * self._n + rows, return_index=True)[1]
        return qi[uniq], rows[uniq], dist[uniq]


def _keys(rows: np.ndarray, c: _Chunk) -> np.ndarray:
    return kernels.keys(rows, c.word, c.shift, c.bits)


@lru_cache(maxsize=None)
def _ball_size(bits: int, t: int) -> int:
    return sum(math.comb(bits, k) for k in range(min(t, bits) + 1))


@lru_cache(maxsize=64)
def _ball(bits: int, t: int) -> np.ndarray:
    """Every mask of ``bits`` bits with at most ``t`` set: the keys within t of 0."""
    out = [0]
    for k in range(1, min(t, bits) + 1):
        out += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), k)]
    arr = np.array(out, dtype=np.intp)
    arr.setflags(write=False)
    return arr


@lru_cache(maxsize=256)
def _layout(bits: int, radius: int, size: int) -> tuple[_Chunk, ...]:
    """The chunking of a ``bits``-bit row for a segment of ``size`` rows searched at ``radius``:
    the number of chunks with the least estimated work per query (probes plus candidates),
    chunks no wider than about log2(size) + 1 bits so the tables stay near one key per row."""
    widest = max(4, min(MAX_CHUNK_BITS, math.ceil(math.log2(max(2, size))) + 1))
    best: tuple[float, int] | None = None
    for m in range(max(1, math.ceil(bits / widest)), bits + 1):
        widths = _widths(bits, m)
        if max(widths) > widest:
            continue
        cost = sum(_ball_size(w, t) * (1.0 + size / (1 << w))
                   for w, t in zip(widths, _thresholds(m, radius)) if t >= 0)
        if best is None or cost < best[0]:
            best = (cost, m)
        if m > radius:
            break  # r + 1 chunks at threshold 0 already; more would only be narrower
    return _place(_widths(bits, best[1]))


def _thresholds(m: int, radius: int) -> list[int]:
    """Per-chunk thresholds t_i with sum(t_i + 1) = radius + 1, as even as possible; the
    higher ones go to the first chunks, which _widths makes the wider ones, where a probe
    finds fewer rows. -1 means the chunk need not be probed."""
    q, rem = divmod(radius + 1, m)
    return [q if i < rem else q - 1 for i in range(m)]


def _widths(bits: int, m: int) -> list[int]:
    """m chunk widths as even as possible."""
    return [bits // m + (1 if i < bits % m else 0) for i in range(m)]


def _place(widths: Sequence[int]) -> tuple[_Chunk, ...]:
    chunks, at = [], 0
    for w in widths:
        chunks.append(_Chunk(at // 64, at % 64, w))
        at += w
    return tuple(chunks)
