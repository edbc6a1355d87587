"""The inner loops of the Hamming index, compiled with numba.

Each is a plain loop over rows or table entries: too data-dependent to vectorise without
materialising every candidate, and too hot to leave to the interpreter. Compiled code
is cached beside this module, so only the first use on a machine pays for compilation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

@njit(cache=True)
def _popcount(x):
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@njit(cache=True)
def _distance(data, row, q, i):
    d = np.uint64(0)
    for w in range(data.shape[1]):
        d += _popcount(data[row, w] ^ q[i, w])
    return d


# A scan runs twice over the queries: once counting each query's hits (a branch-free
# loop that vectorises), then writing them at that query's offset. A probe is bound by
# random reads into the tables and rows, so it runs once, appending hits to arrays that
# double when full (hits are few), and orders its reads so that many are in flight. (Threads were tried: on a coordinator sharing its
# cores with gRPC and the database they cost far more than they gave.)


@njit(cache=True)
def _grown(a, n):
    b = np.empty(2 * a.size, a.dtype)
    b[:n] = a[:n]
    return b


@njit(cache=True)
def _scan_one(data, start, stop, q, i, r, oq, orow, od, at, write):
    n = 0
    for row in range(start, stop):
        d = _distance(data, row, q, i)
        if d <= r:
            if write:
                oq[at + n], orow[at + n], od[at + n] = i, row, d
            n += 1
    return n


@njit(cache=True)
def scan(data, start, stop, q, radius):
    """(query, row, distance) for every row in [start, stop) within ``radius`` of a query,
    ordered by query then row."""
    r = np.uint64(radius)
    none = np.empty(0, np.int64)
    counts = np.zeros(q.shape[0] + 1, np.int64)
    for i in range(q.shape[0]):
        counts[i + 1] = _scan_one(data, start, stop, q, i, r, none, none, none, 0, False)
    at = np.cumsum(counts)
    oq, orow, od = np.empty(at[-1], np.int64), np.empty(at[-1], np.int64), np.empty(at[-1], np.int64)
    for i in range(q.shape[0]):
        _scan_one(data, start, stop, q, i, r, oq, orow, od, at[i], True)
    return oq, orow, od


@njit(cache=True)
def probe(data, start, q, qkeys, masks, order, offsets, radius):
    """Rows of one chunk table whose chunk is within the ball ``masks`` of a query's chunk
    key, checked with the full distance: (query, row, distance), possibly repeating a row
    that another chunk's table also finds.

    Each query goes in three passes: every probed bucket's bounds, then every candidate's
    row number, then every candidate's distance. In a big table each read misses the cache;
    within a pass the reads do not depend on one another, so the processor has many misses
    in flight at once instead of waiting on one bucket, then its rows, then the next."""
    r = np.uint64(radius)
    n = 0
    nm = masks.size
    lo, hi = np.empty(nm, np.int64), np.empty(nm, np.int64)
    found = np.empty(4096, np.int64)
    oq, orow, od = np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, np.int64)
    for i in range(q.shape[0]):
        key = qkeys[i]
        total = 0
        for j in range(nm):
            k = key ^ masks[j]
            lo[j], hi[j] = offsets[k], offsets[k + 1]
            total += hi[j] - lo[j]
        if total > found.size:
            found = np.empty(2 * total, np.int64)
        c = 0
        for j in range(nm):
            for p in range(lo[j], hi[j]):
                found[c] = order[p]
                c += 1
        # Written out here and in probe_sketched, not shared: a compiled helper taking and
        # returning the hit arrays costs their reference counts on every candidate row, and
        # made every search a quarter to a half slower.
        for t in range(c):
            row = found[t] + start
            d = _distance(data, row, q, i)
            if d <= r:
                if n == oq.size:
                    oq, orow, od = _grown(oq, n), _grown(orow, n), _grown(od, n)
                oq[n], orow[n], od[n] = i, row, d
                n += 1
    return oq[:n], orow[:n], od[:n]


@njit(cache=True)
def probe_sketched(data, start, q, qkeys, qsketch, order, offsets, sketch, radius):
    """``probe`` for a banded table with sketches (a query's bucket only). A bucket's sketches
    are compared in one branch-free run, keeping the positions within ``radius`` on them;
    only those cost a read of their row."""
    r = np.uint64(radius)
    n = 0
    oq, orow, od = np.empty(1024, np.int64), np.empty(1024, np.int64), np.empty(1024, np.int64)
    near = np.empty(4096, np.int64)
    for i in range(q.shape[0]):
        key = qkeys[i]
        lo, hi = offsets[key], offsets[key + 1]
        if hi - lo > near.size:
            near = np.empty(2 * (hi - lo), np.int64)
        s = np.uint64(qsketch[i])
        c = 0
        for p in range(lo, hi):
            near[c] = p
            c += _popcount(np.uint64(sketch[p]) ^ s) <= r
        for t in range(c):
            row = order[near[t]] + start
            d = _distance(data, row, q, i)
            if d <= r:
                if n == oq.size:
                    oq, orow, od = _grown(oq, n), _grown(orow, n), _grown(od, n)
                oq[n], orow[n], od[n] = i, row, d
                n += 1
    return oq[:n], orow[:n], od[:n]


@njit(cache=True)
def _chunk(data, row, word, shift, bits):
    key = data[row, word] >> np.uint64(shift)
    if shift + bits > 64:
        key |= data[row, word + 1] << np.uint64(64 - shift)
    return np.intp(key & np.uint64((1 << bits) - 1))


@njit(cache=True)
def keys(rows, word, shift, bits):
    """Each row's chunk value (the chunk's ``bits`` bits from bit ``shift`` of word ``word``,
    running on into the next word): the bucket a row is filed under, or a query probes."""
    out = np.empty(rows.shape[0], np.intp)
    for row in range(rows.shape[0]):
        out[row] = _chunk(rows, row, word, shift, bits)
    return out


@njit(cache=True)
def _sketch(v, at):
    """The 32 bits of an 8-byte row from bit ``at`` on, wrapping round to bit 0."""
    if at:
        v = (v >> at) | (v << (np.uint64(64) - at))
    return np.uint32(v & np.uint64(0xFFFFFFFF))


@njit(cache=True)
def row_sketches(rows, shift, bits):
    """Each row's sketch for the chunk at ``shift``, ``bits`` (``table``'s, for queries)."""
    at = np.uint64((shift + bits) % 64)
    out = np.empty(rows.shape[0], np.uint32)
    for row in range(rows.shape[0]):
        out[row] = _sketch(rows[row, 0], at)
    return out


@njit(cache=True)
def sketches(data, start, order, shift, bits):
    """The sketch of the row at each position of a table (``table``'s third array)."""
    at = np.uint64((shift + bits) % 64)
    out = np.empty(order.size, np.uint32)
    for p in range(order.size):
        out[p] = _sketch(data[order[p] + start, 0], at)
    return out


@njit(cache=True)
def table(data, start, stop, word, shift, bits, sketched):
    """A chunk's table of rows [start, stop), by counting sort: (order, offsets, sketches),
    rows ordered by chunk value, stable, offsets[k] the first position of value k
    (offsets[2**bits] = number of rows), and, if ``sketched``, each position's row's 32 bits
    after the chunk, wrapping round to bit 0 (8-byte rows), else an empty array. None of those
    bits is in the chunk (at most 24 bits), so within a bucket, where the chunk is the
    query's, they are a part of the distance that can only understate it. The chunk is read
    from the rows in each pass, so at tens of millions of rows nothing but the tables is
    allocated."""
    offsets = np.zeros((1 << bits) + 1, np.int64)
    for row in range(start, stop):
        offsets[_chunk(data, row, word, shift, bits) + 1] += 1
    for k in range(1 << bits):
        offsets[k + 1] += offsets[k]
    fill = offsets[:-1].copy()
    order = np.empty(stop - start, np.uint32)
    sketch = np.empty(stop - start if sketched else 0, np.uint32)
    at = np.uint64((shift + bits) % 64)
    for row in range(start, stop):
        k = _chunk(data, row, word, shift, bits)
        p = fill[k]
        order[p] = row - start
        if sketched:
            sketch[p] = _sketch(data[row, 0], at)
        fill[k] = p + 1
    return order, offsets, sketch
